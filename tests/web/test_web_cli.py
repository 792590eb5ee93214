"""`lipdub serve` options: flags override the LIPDUB_WEB_* environment; a random token can be asked for."""

from __future__ import annotations

from lipdub.cli import build_parser
from lipdub.cli.serve import settings_from_args


def test_flags_become_web_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("LIPDUB_WEB_WORKERS", "3")
    monkeypatch.setenv("LIPDUB_WEB_TOKEN", "from-env")
    args = build_parser().parse_args(["serve", "--data-dir", str(tmp_path), "--max-upload-mb", "5",
                                      "--max-duration", "30", "--cors", "https://a.example"])
    assert (args.host, args.port) == ("127.0.0.1", 8000)  # this machine only, by default
    s = settings_from_args(args)
    assert s.data_dir == tmp_path and s.max_upload_bytes == 5_000_000 and s.max_duration == 30
    assert s.cors_origins == ["https://a.example"] and s.workers == 3 and s.token == "from-env"
    s = settings_from_args(build_parser().parse_args(["serve", "--token", "random", "--workers", "2"]))
    assert s.workers == 2 and len(s.token) >= 16 and s.token != "random"


def test_defaults_keep_cors_off_and_no_token(monkeypatch):
    monkeypatch.delenv("LIPDUB_WEB_TOKEN", raising=False)
    s = settings_from_args(build_parser().parse_args(["serve"]))
    assert s.cors_origins == [] and s.token is None and s.workers == 1


def test_retention_flags_and_a_bad_value_named(tmp_path, monkeypatch):
    import pytest

    from lipdub.errors import LipdubError

    s = settings_from_args(build_parser().parse_args(["serve", "--keep-days", "2", "--max-storage-gb", "1.5"]))
    assert s.keep_days == 2 and s.max_storage_gb == 1.5
    assert settings_from_args(build_parser().parse_args(["serve"])).keep_days == 7
    # a bad flag value stops at parsing (tests/test_cli_args.py); a bad environment value is named when read
    monkeypatch.setenv("LIPDUB_WEB_KEEP_DAYS", "-1")
    with pytest.raises(LipdubError, match="LIPDUB_WEB_KEEP_DAYS: "):
        settings_from_args(build_parser().parse_args(["serve"]))


def test_public_mode_flags():
    s = settings_from_args(build_parser().parse_args(["serve", "--public", "--quota-jobs", "3", "--quota-mb", "50",
                                                      "--host", "0.0.0.0"]))
    assert s.public and s.quota_jobs == 3 and s.quota_mb == 50 and s.host == "0.0.0.0"
    assert not settings_from_args(build_parser().parse_args(["serve"])).public
