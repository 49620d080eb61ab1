# The library's layers, lowest first (docs/architecture.md). A file may
# include the headers of its own layer and the layers below, and call the
# functions defined there; never above. Run by ctest (tests/CMakeLists.txt):
#
#   cmake -DSRC=src [-DOBJS=a.o;b.o;...] [-DNM=nm] -P tests/layers.cmake
#
# Includes are read from the sources in SRC. Calls are read from the built
# objects with nm: a symbol an object needs, defined by an object of a
# higher layer, is an upward call. That also sees calls the includes hide
# (the public header, which base.h includes, declares functions of every
# layer). Every src/*.c and src/*.h must be given a layer here, so a new
# file is placed on purpose.
cmake_minimum_required(VERSION 3.25)

set(LAYERS base lexer parser engine compiler snapshot inspect runner exporters api cli)
# foundations; figure.c: the text of numbers and names, shared by messages and figures
set(FILES_base base.c base.h figure.c figure.h bpviz/bpviz.h)
# the JSON reader: text -> a tree with offsets, for located errors (traces)
list(APPEND FILES_base jsonread.c jsonread.h)
# the number formatter's powers of ten, generated at build time (cmake/pow10_gen.c)
list(APPEND FILES_base pow10_table.h)
set(FILES_lexer lexer.c lexer.h)
set(FILES_parser parser.c ast.h)
# the op definitions, shapes, kernels, forward and backward; the compiler
# builds its graphs
set(FILES_engine ops.h ops.c op_elem.h graph.h shape.c engine.c engine_impl.h engine_f32.c
    engine_f64.c scalar.c scalar.h vmath.c vmath.h csum.c csum.h matmul.c simd.h finite.c
    conv.c conv.h pool.c pool.h)
set(FILES_compiler model.h compile.c fnprog.c)
set(FILES_snapshot snapshot.c snapshot.h)
set(FILES_inspect inspect.c inspect.h)
# the statement checker (model.c) with the data it reads (data.c, npy.c) and the
# params' initial values (init.c); the run: statements, the training loop
# (train.c) and its optimizers (optim.c)
set(FILES_runner model.c data.c data.h npy.c init.c init.h optim.c optim.h train.c train.h stepset.c)
# traces read back: checked and turned into a model's snapshots (trace.c)
list(APPEND FILES_runner trace.c trace.h)
set(FILES_exporters export.h json.c graphviz.c player.c player_assets.c focus.c focus.h noise.c noise.h
    heatmap.c heatmap.h fonts.c)
set(FILES_api bpviz.c api.c bench.c watch.c cmd_check.c)
set(FILES_cli main.c)

set(rank 0)
foreach(layer IN LISTS LAYERS)
  foreach(f IN LISTS FILES_${layer})
    set(RANK_${f} ${rank})
    set(NAME_${f} ${layer})
  endforeach()
  math(EXPR rank "${rank} + 1")
endforeach()

set(problems "")

# ---- includes ----------------------------------------------------------------
file(GLOB files RELATIVE ${SRC} ${SRC}/*.c ${SRC}/*.h)
list(SORT files)
foreach(f IN LISTS files)
  if(NOT DEFINED RANK_${f})
    string(APPEND problems "${f} has no layer: give it one in tests/layers.cmake\n")
    continue()
  endif()
  file(STRINGS ${SRC}/${f} lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
  foreach(line IN LISTS lines)
    string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*\"([^\"]+)\".*" "\\1" inc "${line}")
    if(NOT DEFINED RANK_${inc})
      string(APPEND problems "${f} includes ${inc}, which has no layer\n")
    elseif(RANK_${inc} GREATER RANK_${f})
      string(APPEND problems
        "${f} (${NAME_${f}}) includes ${inc} (${NAME_${inc}}), a higher layer\n")
    endif()
  endforeach()
endforeach()

# ---- calls -------------------------------------------------------------------
# an object's source: .../src/engine.c.o (Makefiles, Ninja) or engine.o
function(source_of obj out)
  get_filename_component(name ${obj} NAME)
  string(REGEX REPLACE "\\.(o|obj)$" "" name ${name})
  set(${out} ${name} PARENT_SCOPE)
endfunction()

if(OBJS)
  if(NOT NM)
    set(NM nm)
  endif()
  set(objs "")
  foreach(obj IN LISTS OBJS)
    source_of(${obj} f)
    if(NOT DEFINED RANK_${f})
      string(APPEND problems "${f} (an object of the library) has no layer\n")
      continue()
    endif()
    list(APPEND objs ${obj})
    execute_process(COMMAND ${NM} -g --defined-only ${obj} OUTPUT_VARIABLE out
                    RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "${NM} failed on ${obj}")
    endif()
    string(REGEX MATCHALL "[0-9a-fA-F]+ [A-Za-z] [A-Za-z_][A-Za-z0-9_]*" defs "${out}")
    foreach(d IN LISTS defs)
      string(REGEX REPLACE ".* " "" sym "${d}")
      set(DEF_${sym} ${f})
    endforeach()
  endforeach()
  foreach(obj IN LISTS objs)
    source_of(${obj} f)
    execute_process(COMMAND ${NM} -u ${obj} OUTPUT_VARIABLE out RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "${NM} -u failed on ${obj}")
    endif()
    string(REGEX MATCHALL "U [A-Za-z_][A-Za-z0-9_]*" undefs "${out}")
    foreach(u IN LISTS undefs)
      string(SUBSTRING "${u}" 2 -1 sym)
      if(DEFINED DEF_${sym})
        set(g ${DEF_${sym}})
        if(RANK_${g} GREATER RANK_${f})
          string(APPEND problems
            "${f} (${NAME_${f}}) calls ${sym}, defined in ${g} (${NAME_${g}}), a higher layer\n")
        endif()
      endif()
    endforeach()
  endforeach()
endif()

list(JOIN LAYERS " < " order)
if(problems)
  message(FATAL_ERROR "layering: every include and call must go to the same or a lower "
          "layer (${order}):\n${problems}")
endif()
list(LENGTH files nfiles)
list(LENGTH objs nobjs)
message(STATUS "layering: ${nfiles} sources and ${nobjs} objects, every include and call "
        "goes down")
