// The access log: one JSON line per finished turn, for operators.
#pragma once

#include <chrono>
#include <string>

#include "gateway/engine/engine.hpp"

namespace sluice {

struct TurnLogEntry {
  std::string trace_id;
  std::string session_id;
  std::string principal;
  std::string request_id;
  std::string client;  // the client's address ("" when unknown)
  std::string model;
  size_t input_bytes = 0;
  size_t output_bytes = 0;
  double ttft_ms = -1;  // < 0: no token was produced
  double duration_ms = 0;
  bool client_gone = false;  // a client detached during the turn
  int disconnects = 0;
  int resumes = 0;
  const TurnResult* result = nullptr;
};

std::string format_turn_log(const TurnLogEntry& e);

}  // namespace sluice
