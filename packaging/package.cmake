# Install rules and the Debian package: `cmake --build build --target package` (CPack) writes
# streamgate_<version>_<arch>.deb with the binary in /usr/bin, the systemd unit, the
# configuration in /etc/streamgate (a conffile) and the docs in /usr/share/doc/streamgate.
# The maintainer scripts (packaging/debian/) create the service user and leave the service
# stopped and disabled until the configuration has a token key and an API key.
install(TARGETS streamgate RUNTIME DESTINATION bin)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/streamgate.service DESTINATION lib/systemd/system)
# Absolute on purpose: Debian's configuration lives in /etc, not under the /usr prefix. 0640:
# the file may hold secrets; postinst gives it to the service's group.
install(FILES ${PROJECT_SOURCE_DIR}/packaging/streamgate.toml DESTINATION /etc/streamgate
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)
file(GLOB doc_pages ${PROJECT_SOURCE_DIR}/docs/*.md ${PROJECT_SOURCE_DIR}/docs/*.toml)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/CHANGELOG.md
              ${PROJECT_SOURCE_DIR}/LICENSE ${doc_pages}
        DESTINATION share/doc/streamgate)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME streamgate)
set(CPACK_PACKAGE_VENDOR streamgate)
set(CPACK_PACKAGE_CONTACT "streamgate maintainers <maintainers@streamgate.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "real-time event gateway: WebSockets, JWT, multi-tenant fan-out")
set(CPACK_PACKAGE_DESCRIPTION
    "streamgate holds every user's WebSocket, authenticates it with the product's JWT and \
pushes each event a backend service publishes to the connected users of the right org who asked \
for it, with resume after reconnects, chat rooms and resumable uploads.")
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
# The shared libraries' packages (libssl3, libhiredis, liburing2, ...) come from dpkg-shlibdeps;
# adduser runs in postinst.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/debian/conffiles ${PROJECT_SOURCE_DIR}/packaging/debian/postinst
    ${PROJECT_SOURCE_DIR}/packaging/debian/prerm ${PROJECT_SOURCE_DIR}/packaging/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
