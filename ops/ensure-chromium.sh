#!/usr/bin/env bash
# The browser tests drive Debian's chromium (playwright-core, no downloaded browser). Installs
# it with apt-get when /usr/bin/chromium is missing; a no-op otherwise.
# Reactions are emoji: without a colour emoji font they render as empty boxes in the tests'
# screenshots, so the font comes with the browser.
set -euo pipefail
EMOJI_FONT=/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf
if [ -x /usr/bin/chromium ] && [ -f "$EMOJI_FONT" ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
echo "ensure-chromium: installing chromium and an emoji font with apt-get" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null
/usr/bin/chromium --version >&2
