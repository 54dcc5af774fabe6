# Writes OUT (a header) with the commit of SOURCE_DIR and whether its tracked files have uncommitted changes,
# read at build time (`cmake -P`, run by the linfuse_build_commit target on every build). The header is
# rewritten only when its text changes, so an unchanged commit recompiles nothing. A source tree without git
# (an unpacked archive) records "unknown".
find_package(Git QUIET)
set(commit "unknown")
set(dirty 0)
if(GIT_FOUND)
  execute_process(COMMAND ${GIT_EXECUTABLE} -C ${SOURCE_DIR} rev-parse --short=12 HEAD
                  OUTPUT_VARIABLE out RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(rc EQUAL 0 AND out)
    set(commit "${out}")
    execute_process(COMMAND ${GIT_EXECUTABLE} -C ${SOURCE_DIR} status --porcelain --untracked-files=no
                    OUTPUT_VARIABLE changes OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    if(changes)
      set(dirty 1)
    endif()
  endif()
endif()
set(text "// Written by cmake/write_build_commit.cmake at build time; do not edit.\n#define LINFUSE_BUILD_COMMIT \"${commit}\"\n#define LINFUSE_BUILD_DIRTY ${dirty}\n")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT "${old}" STREQUAL "${text}")
  file(WRITE ${OUT} "${text}")
endif()
