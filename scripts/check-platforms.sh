#!/usr/bin/env bash
# Every dependency (and the lowest allowed torch) has a wheel for Linux x86-64/aarch64, macOS arm64 and
# Windows x86-64 on the supported Pythons. Reads PyPI's file lists only; downloads no wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
python scripts/check_platforms.py
