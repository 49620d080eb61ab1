# The PyTorch recorder, python/bpviz_torch.py: which python3 runs its tests,
# and where `cmake --install` puts it.
#
# BPV_PYTHON: the first of `python3` on PATH and /usr/bin/python3 (Debian's,
# with python3-torch) that imports torch, else the first found; without torch
# the recorder's tests report SKIP.
if(NOT DEFINED BPV_PYTHON)
  find_program(BPV_PYTHON_PATH python3)
  set(candidates ${BPV_PYTHON_PATH})
  if(EXISTS /usr/bin/python3)
    list(APPEND candidates /usr/bin/python3)
  endif()
  list(REMOVE_DUPLICATES candidates)
  set(chosen "")
  foreach(py ${candidates})
    execute_process(COMMAND ${py} -c "import torch" RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
    if(rc EQUAL 0)
      set(chosen ${py})
      break()
    endif()
  endforeach()
  if(NOT chosen AND candidates)
    list(GET candidates 0 chosen)
  endif()
  set(BPV_PYTHON "${chosen}" CACHE FILEPATH "python3 for the PyTorch recorder's tests")
endif()

# BPV_INSTALL_PYTHONDIR, under the prefix: lib/python3.X/dist-packages where
# the interpreter is Debian's (its sys.path holds that directory under both
# /usr and /usr/local), else lib/python3.X/site-packages.
if(NOT DEFINED BPV_INSTALL_PYTHONDIR)
  set(dir "lib/python3/dist-packages")
  if(BPV_PYTHON)
    execute_process(COMMAND ${BPV_PYTHON} -c
      "import sys; v = '%d.%d' % sys.version_info[:2]; d = any(p.endswith('dist-packages') for p in sys.path); print('lib/python%s/%s' % (v, 'dist-packages' if d else 'site-packages'))"
      OUTPUT_VARIABLE out OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc ERROR_QUIET)
    if(rc EQUAL 0 AND out)
      set(dir ${out})
    endif()
  endif()
  set(BPV_INSTALL_PYTHONDIR "${dir}" CACHE STRING
    "where bpviz_torch.py is installed, relative to the prefix")
endif()
install(FILES ${PROJECT_SOURCE_DIR}/python/bpviz_torch.py DESTINATION ${BPV_INSTALL_PYTHONDIR})
