// The one translation unit that compiles Boost.Asio's SSL support
// (BOOST_ASIO_SEPARATE_COMPILATION); apart from the rest of Asio so that
// only the targets that speak TLS link OpenSSL's libssl.
#include <boost/asio/ssl/impl/src.hpp>
