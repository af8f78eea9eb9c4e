#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "tests/support/ws_client.hpp"

namespace sluice::test {

namespace {
HttpReply request(uint16_t port, boost::beast::http::verb verb, std::string target,
                  std::string body, const std::vector<std::pair<std::string, std::string>>& headers) {
  namespace net = boost::asio;
  namespace beast = boost::beast;
  namespace http = beast::http;
  net::io_context ioc;
  beast::tcp_stream stream(ioc);
  stream.connect(net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  http::request<http::string_body> req{verb, target, 11};
  req.set(http::field::host, "127.0.0.1");
  for (const auto& [k, v] : headers) req.set(k, v);
  if (verb == http::verb::post) req.set(http::field::content_type, "application/json");
  req.body() = std::move(body);
  req.prepare_payload();
  http::write(stream, req);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(boost::none);  // a whole replayed answer can be megabytes
  http::read(stream, buffer, parser);
  auto res = parser.release();
  beast::error_code ec;
  stream.socket().shutdown(net::ip::tcp::socket::shutdown_both, ec);
  return {static_cast<int>(res.result_int()), std::move(res.body())};
}
}  // namespace

HttpReply http_get(uint16_t port, std::string target, std::string origin) {
  std::vector<std::pair<std::string, std::string>> headers;
  if (!origin.empty()) headers.emplace_back("Origin", origin);
  return request(port, boost::beast::http::verb::get, std::move(target), "", headers);
}

HttpReply http_get_with(uint16_t port, std::string target,
                        std::vector<std::pair<std::string, std::string>> headers) {
  return request(port, boost::beast::http::verb::get, std::move(target), "", headers);
}

HttpReply http_post(uint16_t port, std::string target, std::string body,
                    std::vector<std::pair<std::string, std::string>> headers) {
  return request(port, boost::beast::http::verb::post, std::move(target), std::move(body), headers);
}

}  // namespace sluice::test
