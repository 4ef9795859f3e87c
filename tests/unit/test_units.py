import pytest

from shardkit.errors import UsageError
from shardkit.units import format_size, parse_size


def test_parse_size():
    assert parse_size("1GB") == 10**9
    assert parse_size("512MiB") == 512 * 2**20
    assert parse_size("100kb") == 100_000
    assert parse_size(" 1.5 GB ") == 1_500_000_000
    assert parse_size(4096) == 4096
    for bad in ("1 parsec", "-1GB", "0", "", "GB", True):
        with pytest.raises(UsageError):
            parse_size(bad, name="--budget")


def test_format_size():
    assert format_size(999) == "999 B" and format_size(1_500_000) == "1.50 MB"
