# xpscale_library(TARGET EXPORT_NAME NAME SOURCES ... [PUBLIC ...] [PRIVATE ...])
#
# One static library of xpscale: public headers under include/ (installed
# as they are, so <xpscale/<part>/x.h> works from the build and from an
# install tree), private ones under src/. It links only what it names, so a
# part cannot include the headers of a part it does not depend on: that is
# how the build keeps dependencies pointing one way (docs/architecture.md).
# Its alias is xpscale::NAME; install() exports it under that name.
include(GNUInstallDirs)

function(xpscale_library target)
  cmake_parse_arguments(L "" "EXPORT_NAME" "SOURCES;PUBLIC;PRIVATE" ${ARGN})
  add_library(${target} STATIC ${L_SOURCES})
  add_library(xpscale::${L_EXPORT_NAME} ALIAS ${target})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${L_EXPORT_NAME})
  target_include_directories(${target}
    PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
           $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_link_libraries(${target}
    PUBLIC ${L_PUBLIC}
    PRIVATE ${L_PRIVATE} $<BUILD_INTERFACE:xpscale_warnings>)
  xpscale_install_library(${target})
endfunction()

# Adds a target (a library made by xpscale_library or by hand) and its
# include/ folder to the install and the exported package.
function(xpscale_install_library target)
  install(TARGETS ${target} EXPORT xpscaleTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
          RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  # Once per folder: the collectives libraries share one include/.
  get_property(installed DIRECTORY PROPERTY XPSCALE_HEADERS_INSTALLED)
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/include AND NOT installed)
    install(DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
    set_property(DIRECTORY PROPERTY XPSCALE_HEADERS_INSTALLED TRUE)
  endif()
endfunction()
