# sluice_add_plugin(TARGET SOURCES...): builds a Sluice plugin, a shared
# object that exports only sluice_plugin_entry (hidden visibility) and links
# nothing of the gateway: the host's functions come through its table.
function(sluice_add_plugin target)
  add_library(${target} MODULE ${ARGN})
  target_link_libraries(${target} PRIVATE sluice::sdk)
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  # Every symbol resolved at link time, so a plugin never leans on the
  # gateway's own symbols (sanitizer runtimes live in the executable).
  if(NOT CMAKE_CXX_FLAGS MATCHES "sanitize")
    target_link_options(${target} PRIVATE "LINKER:--no-undefined")
  endif()
endfunction()
