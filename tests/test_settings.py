"""Encoder settings: each default stated once, each value checked once, when the settings are built."""

from __future__ import annotations

import pytest

from pyserini_diffretriever.settings import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_LENGTH,
    EncoderSettings,
    check_positive_int,
)


def test_the_defaults_are_the_named_constants():
    settings = EncoderSettings()
    assert (settings.batch_size, settings.max_length, settings.k) == (DEFAULT_BATCH_SIZE, DEFAULT_MAX_LENGTH, None)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"representation": "sparse"}, r"representation='sparse': expected one of \('dense', 'multi', 'impact'\)"),
        ({"batch_size": 0}, "batch_size=0: expected an integer >= 1"),
        ({"max_length": 2.5}, "max_length=2.5: expected an integer >= 1"),
        ({"k": True}, "k=True: expected an integer >= 1"),
        ({"title_separator": None}, "title_separator=None: expected a string"),
    ],
)
def test_bad_values_are_refused_when_the_settings_are_built(options, message):
    with pytest.raises(ValueError, match=message):
        EncoderSettings(**options)
    with pytest.raises(ValueError, match=message):  # every way of building them goes through the same check
        EncoderSettings().replace(**options)


def test_check_positive_int_returns_the_value_or_names_the_option():
    assert check_positive_int("k", 3) == 3
    with pytest.raises(ValueError, match="checkpoint_every=-1: expected an integer >= 1"):
        check_positive_int("checkpoint_every", -1)
