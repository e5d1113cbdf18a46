# Install layout (cmake --install build [--prefix P]) and the Debian package
# (cpack -G DEB in the build folder, always under /usr; or scripts/package):
#   bin/pixmend
#   share/pixmend/web/                 the UI; serve finds it without --web-dir
#   share/man/man1/pixmend*.1.gz       pixmend(1) and one page per sub-command
#   share/doc/pixmend/                 README, operations, API
#   lib/systemd/system/pixmend.service installed, not enabled
#   /etc/logrotate.d/pixmend
include(GNUInstallDirs)

install(TARGETS pixmend RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${CMAKE_SOURCE_DIR}/web/ DESTINATION ${CMAKE_INSTALL_DATADIR}/pixmend/web)
# serve looks next to its binary first (../share/pixmend/web), then in the
# source tree, then here: the prefix the build was configured for.
target_compile_definitions(pixmend PRIVATE PM_INSTALL_WEB_DIR="${CMAKE_INSTALL_FULL_DATADIR}/pixmend/web")

# Man pages: pixmend.1 is written by hand; pixmend-CMD.1 is made from
# `pixmend CMD --help` at build time, so it never disagrees with the program.
set(PM_MAN_COMMANDS version probe inpaint colorize serve worker bench calibrate models report)
set(PM_MAN_PAGES "")
set(PM_MAN_DIR ${CMAKE_BINARY_DIR}/man)
add_custom_command(OUTPUT ${PM_MAN_DIR}/pixmend.1.gz
  COMMAND ${CMAKE_COMMAND} -E make_directory ${PM_MAN_DIR}
  COMMAND sh -c "sed 's/@VERSION@/${PROJECT_VERSION}/' '${CMAKE_SOURCE_DIR}/man/pixmend.1' | gzip -9n > '${PM_MAN_DIR}/pixmend.1.gz'"
  DEPENDS ${CMAKE_SOURCE_DIR}/man/pixmend.1 VERBATIM)
list(APPEND PM_MAN_PAGES ${PM_MAN_DIR}/pixmend.1.gz)
foreach(cmd ${PM_MAN_COMMANDS})
  add_custom_command(OUTPUT ${PM_MAN_DIR}/pixmend-${cmd}.1.gz
    COMMAND ${CMAKE_COMMAND} -E make_directory ${PM_MAN_DIR}
    COMMAND sh ${CMAKE_SOURCE_DIR}/man/help2man.sh $<TARGET_FILE:pixmend> ${cmd} ${PROJECT_VERSION} ${PM_MAN_DIR}/pixmend-${cmd}.1.gz
    DEPENDS pixmend ${CMAKE_SOURCE_DIR}/man/help2man.sh VERBATIM)
  list(APPEND PM_MAN_PAGES ${PM_MAN_DIR}/pixmend-${cmd}.1.gz)
endforeach()
add_custom_target(pixmend_man ALL DEPENDS ${PM_MAN_PAGES})
install(FILES ${PM_MAN_PAGES} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

install(FILES ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/docs/operations.md ${CMAKE_SOURCE_DIR}/docs/api.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

# The systemd unit of deploy/, its paths rewritten at install time for the
# prefix installed to (cmake --install --prefix P, or cpack's /usr).
install(CODE "
  file(READ \"${CMAKE_SOURCE_DIR}/deploy/pixmend.service\" unit)
  string(REPLACE \"/usr/local/bin/pixmend\" \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/pixmend\" unit \"\${unit}\")
  string(REPLACE \"file:///usr/local/share/doc/pixmend\" \"file://\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DOCDIR}\" unit \"\${unit}\")
  string(REGEX REPLACE \"# systemd unit for pixmend\\\\. Install:[^\\n]*\\n#[^\\n]*\\n#[^\\n]*\\n\"
         \"# systemd unit for pixmend, installed disabled: systemctl enable --now pixmend\\n\" unit \"\${unit}\")
  file(WRITE \"${CMAKE_BINARY_DIR}/deploy/pixmend.service\" \"\${unit}\")
")
install(FILES ${CMAKE_BINARY_DIR}/deploy/pixmend.service DESTINATION lib/systemd/system)
install(FILES ${CMAKE_SOURCE_DIR}/deploy/pixmend.logrotate DESTINATION /etc/logrotate.d RENAME pixmend)

# ------------------------------------------------------------- cpack -G DEB
set(CPACK_PACKAGE_NAME pixmend)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(PM_DEB_MAINTAINER "pixmend maintainers <pixmend@example.org>" CACHE STRING
    "Maintainer field of the Debian package: set it to whoever publishes the package")
set(CPACK_PACKAGE_CONTACT "${PM_DEB_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "self-hosted image restoration service (inpainting, colorization)")
set(CPACK_PACKAGE_DESCRIPTION "pixmend removes objects and blemishes from photos (PatchMatch
built in, LaMa from its checkpoint) and colorizes black-and-white photos
(DDColor), as a command and as an HTTP service with a browser UI and a
memory-aware job scheduler.")
# A Debian package lives under /usr whatever the build's own prefix (serve
# finds the UI next to its binary; the unit is written for /usr at install).
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION graphics)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://github.com/pixmend/pixmend")
# The runtime libraries, found by dpkg-shlibdeps from the binary and the TLS
# compat libraries (libssl3); adduser for postinst.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "logrotate, curl") # curl: the outside client of `pixmend report`
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/cmake/debian/postinst ${CMAKE_SOURCE_DIR}/cmake/debian/prerm
    ${CMAKE_SOURCE_DIR}/cmake/debian/postrm ${CMAKE_SOURCE_DIR}/cmake/debian/conffiles)
set(CPACK_GENERATOR DEB)
include(CPack)
