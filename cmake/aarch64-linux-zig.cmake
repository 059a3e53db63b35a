# Cross-compiles cliprt._topk for aarch64 Linux with zig's clang, against glibc 2.28
# (manylinux_2_28). Used by scripts/build-aarch64.sh, which makes the wrapper scripts in
# CLIPRT_ZIG_BIN (zig-cc, zig-c++, zig-ar, zig-ranlib) and the target's Python headers.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(_zig_bin "$ENV{CLIPRT_ZIG_BIN}")
if(NOT _zig_bin)
  message(FATAL_ERROR "CLIPRT_ZIG_BIN is not set: run scripts/build-aarch64.sh")
endif()
set(CMAKE_C_COMPILER "${_zig_bin}/zig-cc")
set(CMAKE_CXX_COMPILER "${_zig_bin}/zig-c++")
set(CMAKE_AR "${_zig_bin}/zig-ar" CACHE FILEPATH "")
set(CMAKE_RANLIB "${_zig_bin}/zig-ranlib" CACHE FILEPATH "")

# Nothing from the build machine's /usr may leak into the target's link.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# The target interpreter cannot run here: tell pybind11 what it would have said.
set(PYTHON_IS_DEBUG 0)
set(PYTHON_MODULE_DEBUG_POSTFIX "")
set(PYTHON_MODULE_EXTENSION "$ENV{SETUPTOOLS_EXT_SUFFIX}")
