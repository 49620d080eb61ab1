# Writes the shared library's version script from the public header: every
# bpv_ function it declares is exported, everything else stays local, so the
# API is declared in one place only.  cmake -DHEADER=... -DOUT=... -P exports.cmake
file(READ ${HEADER} text)
string(REGEX MATCHALL "bpv_[a-z0-9_]+\\(" names "${text}")
list(TRANSFORM names REPLACE "\\($" "")
list(REMOVE_DUPLICATES names)
list(SORT names)
set(script "/* generated from include/bpviz/bpviz.h by cmake/exports.cmake */\nBPVIZ_0 {\n  global:\n")
foreach(name IN LISTS names)
  string(APPEND script "    ${name};\n")
endforeach()
string(APPEND script "  local:\n    *;\n};\n")
file(CONFIGURE OUTPUT ${OUT} CONTENT "${script}" @ONLY)
