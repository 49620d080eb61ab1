# `cmake --install`: the command, both libraries, the header, pkg-config and
# CMake package files, man pages and shell completions.
include(CMakePackageConfigHelpers)

install(TARGETS bpviz_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS bpviz bpviz_shared EXPORT bpvizTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/bpviz DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# bpviz.pc finds its prefix from its own place (${pcfiledir}), so the files
# work from any `cmake --install --prefix`, not only the configured one.
file(RELATIVE_PATH BPV_PC_TO_PREFIX "/prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/prefix")
string(REGEX REPLACE "/$" "" BPV_PC_TO_PREFIX "${BPV_PC_TO_PREFIX}")
configure_file(${CMAKE_CURRENT_LIST_DIR}/bpviz.pc.in ${PROJECT_BINARY_DIR}/bpviz.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/bpviz.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

set(BPV_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/bpviz)
install(EXPORT bpvizTargets NAMESPACE bpviz:: DESTINATION ${BPV_CMAKE_DIR})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/bpvizConfig.cmake.in
  ${PROJECT_BINARY_DIR}/bpvizConfig.cmake INSTALL_DESTINATION ${BPV_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/bpvizConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/bpvizConfig.cmake
  ${PROJECT_BINARY_DIR}/bpvizConfigVersion.cmake DESTINATION ${BPV_CMAKE_DIR})

install(FILES ${PROJECT_SOURCE_DIR}/docs/man/bpviz.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${PROJECT_SOURCE_DIR}/docs/man/bpviz-lang.5 DESTINATION ${CMAKE_INSTALL_MANDIR}/man5)
install(FILES ${PROJECT_SOURCE_DIR}/completions/bpviz.bash
  DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME bpviz)
install(FILES ${PROJECT_SOURCE_DIR}/completions/_bpviz
  DESTINATION ${CMAKE_INSTALL_DATADIR}/zsh/site-functions)
