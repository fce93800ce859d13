# gpu/engine-deps.cmake - the engine's libraries found without pkg-config,
# for the root build with -DSLDD_NODE=OFF (the GPU machine: docs/gpu.md).
#
# Defines the targets distill/ links (PkgConfig::OPENBLAS, PkgConfig::LIBPNG,
# PkgConfig::LIBCRYPTO) from the system, or, with SLDD_SYSROOT, only from a
# folder of unpacked Debian packages (scripts/device-check --fetch-debs).
# zlib is found by distill/ itself (ZLIB_ROOT points into the sysroot).
set(SLDD_MULTIARCH x86_64-linux-gnu)
set(SLDD_FIND_OPTS)
set(SLDD_INC_HINTS)
set(SLDD_LIB_HINTS)
if(SLDD_SYSROOT)
  # only the unpacked packages: a half-installed system copy must not mix in
  set(SLDD_FIND_OPTS NO_DEFAULT_PATH)
  set(SLDD_INC_HINTS ${SLDD_SYSROOT}/usr/include ${SLDD_SYSROOT}/usr/include/${SLDD_MULTIARCH})
  set(SLDD_LIB_HINTS ${SLDD_SYSROOT}/usr/lib/${SLDD_MULTIARCH}
      ${SLDD_SYSROOT}/lib/${SLDD_MULTIARCH})
  set(ZLIB_ROOT ${SLDD_SYSROOT}/usr)
  # the unpacked libraries' own dependencies (libgfortran for OpenBLAS)
  add_link_options(-Wl,-rpath-link,${SLDD_SYSROOT}/usr/lib/${SLDD_MULTIARCH})
  set(CMAKE_BUILD_RPATH ${SLDD_SYSROOT}/usr/lib/${SLDD_MULTIARCH}
      ${SLDD_SYSROOT}/usr/lib/${SLDD_MULTIARCH}/openblas-pthread)
endif()

function(sldd_dep name header header_suffixes libnames lib_suffixes)
  find_path(SLDD_${name}_INC ${header} HINTS ${SLDD_INC_HINTS}
            PATH_SUFFIXES ${header_suffixes} ${SLDD_FIND_OPTS})
  find_library(SLDD_${name}_LIB NAMES ${libnames} HINTS ${SLDD_LIB_HINTS}
               PATH_SUFFIXES ${lib_suffixes} ${SLDD_FIND_OPTS})
  if(NOT SLDD_${name}_INC OR NOT SLDD_${name}_LIB)
    message(FATAL_ERROR "SLDD_NODE=OFF: ${name} not found (${header}: ${SLDD_${name}_INC}, "
                        "library: ${SLDD_${name}_LIB}); see docs/gpu.md")
  endif()
  add_library(PkgConfig::${name} INTERFACE IMPORTED)
  set_target_properties(PkgConfig::${name} PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${SLDD_${name}_INC}"
    INTERFACE_LINK_LIBRARIES "${SLDD_${name}_LIB}")
  message(STATUS "engine library ${name}: ${SLDD_${name}_LIB}")
endfunction()
sldd_dep(OPENBLAS cblas.h "${SLDD_MULTIARCH}/openblas-pthread;openblas-pthread;openblas"
         "openblas" "openblas-pthread;${SLDD_MULTIARCH}/openblas-pthread")
sldd_dep(LIBPNG png.h "libpng16" "png16;png" "")
sldd_dep(LIBCRYPTO openssl/evp.h "" "crypto" "")
