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

# ---- ROS 2 launch system + CLI (issue 24) ---------------------------------------------------------------
# `ros2 launch` and the `ros2` verbs (node/topic/param/service/interface/pkg/run) are not on PyPI; when
# ../shared/ros2-kit is beside the checkout its install.sh adds them (wheels + a CMake build of
# composition_interfaces; 34-43 s once on 2 cores). Cached: rerun only when the kit or requirements.txt changed
# or `ros2` is gone. --no-ament-hook: nothing sets AMENT_PREFIX_PATH behind the user's back; the project needs
# none, the `ros2` verbs need `export AMENT_PREFIX_PATH=$VIRTUAL_ENV` (README, shell setup).
# RUNESPOOR_ROS2_KIT=none skips it; =DIR takes another kit.
ROS2_KIT=${RUNESPOOR_ROS2_KIT:-$ROOT/../shared/ros2-kit}
if [ "$ROS2_KIT" != none ] && [ -x "$ROS2_KIT/install.sh" ]; then
  ROS2_KIT_HASH=$( { cat "$VENV/.req-hash"; cat "$ROS2_KIT/install.sh" "$ROS2_KIT/SHA256SUMS"; } | sha256sum | cut -c1-16)
  if [ "$(cat "$VENV/.ros2-kit-hash" 2>/dev/null)" != "$ROS2_KIT_HASH" ] || [ ! -x "$VENV/bin/ros2" ]; then
    echo "setup: installing the ROS 2 launch system and CLI into $VENV ($ROS2_KIT/install.sh)"
    mkdir -p build
    "$ROS2_KIT/install.sh" "$VENV" --no-ament-hook > build/ros2-kit-install.log 2>&1 \
      || { tail -40 build/ros2-kit-install.log; echo "setup: ros2 kit failed (log: build/ros2-kit-install.log);" \
           "RUNESPOOR_ROS2_KIT=none make setup skips it"; exit 1; }
    echo "$ROS2_KIT_HASH" > "$VENV/.ros2-kit-hash"
  fi
elif [ ! -x "$VENV/bin/ros2" ]; then
  echo "setup: no \`ros2\` command (launch/launch_ros/ros2cli are not on PyPI): \`runespoor launch\` does the" \
       "launching; for \`ros2 launch\` and the \`ros2\` verbs get ros2-kit and run \`ros2-kit/install.sh $VENV" \
       "--no-ament-hook\` (README, \"Pip-only route\"), or use a ROS 2 install (colcon route)"
fi
# ---- end ROS 2 launch system + CLI ------------------------------------------------------------------------

# ---- cv_bridge (issue 25) ------------------------------------------------------------------------------
# The real ROS 2 cv_bridge, built into the venv by ../shared/cv_bridge-kit/install.sh when the kit is there
# (its own apt-get of the missing Debian build deps, then CMake; ~50-65 s once, on 2 cores). Without the kit
# runespoor_common/imgconv.py uses its stand-in. Cached: rerun only when the kit or requirements.txt changed or
# cv_bridge's files are gone. RUNESPOOR_CV_BRIDGE_KIT=none skips it; =DIR takes another kit.
CVB_KIT=${RUNESPOOR_CV_BRIDGE_KIT:-$ROOT/../shared/cv_bridge-kit}
if [ "$CVB_KIT" != none ] && [ -x "$CVB_KIT/install.sh" ]; then
  CVB_HASH=$( { cat "$VENV/.req-hash"; (cd "$CVB_KIT" && find . -type f -not -path '*/__pycache__/*' | sort \
              | xargs -d '\n' sha256sum); } | sha256sum | cut -c1-16)
  if [ "$(cat "$VENV/.cv_bridge-hash" 2>/dev/null)" != "$CVB_HASH" ] || [ ! -f "$VENV/share/cv_bridge/package.xml" ]; then
    echo "setup: building the real cv_bridge into $VENV ($CVB_KIT/install.sh)"
    mkdir -p build
    "$CVB_KIT/install.sh" "$VENV" > build/cv_bridge-install.log 2>&1 \
      || { tail -40 build/cv_bridge-install.log; echo "setup: cv_bridge kit failed (log: build/cv_bridge-install.log);" \
           "RUNESPOOR_CV_BRIDGE_KIT=none make setup uses the stand-in instead"; exit 1; }
    echo "$CVB_HASH" > "$VENV/.cv_bridge-hash"
  fi
fi
# ---- end cv_bridge --------------------------------------------------------------------------------------
echo "setup: ok ($VENV)"
