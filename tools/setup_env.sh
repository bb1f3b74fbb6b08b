#!/usr/bin/env bash
# Pip-only ROS 2 environment for Runespoor (what `make setup` runs). Idempotent and cached:
#  1. Debian build tools via apt-get when missing (cmake, a C/C++ compiler, python3-venv);
#  2. .venv with requirements.txt (ROS 2 Kilted wheels, torch==2.13.0 CPU, OpenCV, rosbags, ...),
#     reinstalled only when requirements.txt changes;
#  3. the CMake fix of DESIGN §3 (tools/fix_ros_wheels_cmake.py);
#  4. the package (interfaces, node executables, launch/config) built with cmake and installed into the
#     venv prefix; the checkout itself goes on the venv's sys.path (editable), rebuilt only when the
#     interfaces, CMakeLists.txt or the node graph change.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}

need=()
command -v cmake >/dev/null || need+=(cmake)
command -v c++ >/dev/null || need+=(g++)
command -v cc >/dev/null || need+=(gcc)
command -v make >/dev/null || need+=(make)
"$PY" -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
REQ_HASH=$(sha256sum requirements.txt | cut -c1-16)
if [ "$(cat "$VENV/.req-hash" 2>/dev/null)" != "$REQ_HASH" ]; then
  echo "setup: installing Python packages into $VENV (requirements.txt changed)"
  mkdir -p build
  "$VENV/bin/pip" install --disable-pip-version-check -r requirements.txt > build/pip-install.log 2>&1 \
    || { grep -v 'is ignored: it is neither' build/pip-install.log | tail -40; exit 1; }
  "$VENV/bin/python" tools/fix_ros_wheels_cmake.py --prefix "$VENV"
  echo "$REQ_HASH" > "$VENV/.req-hash"
  rm -f "$VENV/.build-hash"
fi

BUILD_HASH=$(cat CMakeLists.txt package.xml runespoor_msgs/msg/*.msg runespoor_common/graph.py tools/gen_scripts.py scripts/runespoor \
             $(find launch config models -type f 2>/dev/null | sort) | sha256sum | cut -c1-16)
if [ "$(cat "$VENV/.build-hash" 2>/dev/null)" != "$BUILD_HASH" ]; then
  echo "setup: building the runespoor package (interfaces) into $VENV"
  export AMENT_PREFIX_PATH=$VENV
  export PATH=$VENV/bin:$PATH
  rm -rf build/pip
  cmake -S . -B build/pip -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$VENV/bin/python" \
        -DRUNESPOOR_INSTALL_PYTHON=OFF -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release > build-pip.log 2>&1 \
    || { cat build-pip.log; exit 1; }
  cmake --build build/pip -j2 >> build-pip.log 2>&1 || { tail -50 build-pip.log; exit 1; }
  cmake --install build/pip >> build-pip.log 2>&1 || { tail -50 build-pip.log; exit 1; }
  mv build-pip.log build/pip/
  # like pip's console scripts: the installed executables run this venv's interpreter
  sed -i "1s|^#!.*python3\$|#!$VENV/bin/python|" "$VENV/bin/runespoor" "$VENV"/lib/runespoor/*
  SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$ROOT" > "$SITE/runespoor-checkout.pth"
  echo "$BUILD_HASH" > "$VENV/.build-hash"
fi
"$VENV/bin/python" -c 'from runespoor.msg import EncodedFrame, KnobConfig, TailReport, LinkStats, ClassMap' \
  || { echo "setup: the interfaces do not import; see build/pip/build-pip.log"; exit 1; }
echo "setup: ok ($VENV)"
