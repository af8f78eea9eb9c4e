/*
 * Sluice plugin ABI v1: the C contract between the Sluice gateway (the host)
 * and a plugin shared object. docs/plugins.md is the guide; this header is
 * the reference.
 *
 * A plugin exports one symbol, sluice_plugin_entry, which returns a
 * descriptor of what it offers: tools the model can call, and moderators
 * that see every piece of answer text before any client does, and (1.2)
 * retrievers that find the passages of a knowledge base an answer rests on.
 *
 * Compatibility promise:
 * - Every struct that crosses the boundary starts with `struct_size`; the
 *   descriptor and the host table also carry `abi_version`. Structs only
 *   ever grow at the end. A reader checks `struct_size` before touching a
 *   field added in a later minor version.
 * - A new minor version adds fields and host functions; a plugin built
 *   against an older minor loads in a newer host. A different major does not
 *   load: the host refuses it with a clear message.
 * - Each struct's 1.0 layout has a frozen size (SLUICE_*_V1_0_SIZE, at the
 *   end of this header): the host accepts any struct of major 1 at least that
 *   large, and treats the fields past a struct's `struct_size` as absent.
 *   SLUICE_HAS_FIELD tells whether a struct has a field.
 *
 * 1.1 added: sluice_tool_v1.timeout_ms; host->result_cancelled and
 * host->result_time_left_ms.
 * 1.2 added: retrievers (sluice_retriever_v1, sluice_plugin_v1.retrievers)
 * and host->result_add_passage.
 *
 * Ownership, in the names:
 * - `sluice_str` is a borrowed {ptr, len} view: valid for the duration of
 *   the call it is passed to, not NUL-terminated, always UTF-8.
 * - Memory is freed by the side that allocated it. Text a plugin hands to
 *   the host (results, verdicts, errors) goes through a host function that
 *   copies it; the plugin's buffer may be reused when the function returns.
 * - `const char*` fields of the descriptor, tools and moderators are the
 *   plugin's static strings, valid until the shared object is unloaded.
 *
 * Threads:
 * - sluice_plugin_entry, create and destroy run on the main thread of the
 *   process that loads the plugin: the gateway (moderators, and tools set to
 *   run in process) and, for tools, by default, a sluice-plugin-host process
 *   of the plugin's own, where a crash or hang ends only that process.
 * - A tool's invoke runs on the plugin's tool workers, possibly for several
 *   calls at once: it must be thread-safe. It may block (a database query),
 *   within the host's deadline; a call past it is abandoned (its result is
 *   discarded) and the model is told it timed out.
 * - A moderator's functions for one stream are never called concurrently,
 *   but different streams are moderated on different threads at once. They
 *   run in the gateway on every piece of text, so they must be fast and
 *   never block.
 * - Every function is called only from the host; none may throw or longjmp
 *   across the boundary (the C++ layer, plugin.hpp, turns exceptions into
 *   statuses).
 */
#ifndef SLUICE_PLUGIN_H
#define SLUICE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SLUICE_PLUGIN_ABI_MAJOR 1
#define SLUICE_PLUGIN_ABI_MINOR 2
/* major in the high 16 bits, minor in the low 16 */
#define SLUICE_PLUGIN_ABI_VERSION ((uint32_t)((SLUICE_PLUGIN_ABI_MAJOR << 16) | SLUICE_PLUGIN_ABI_MINOR))
#define SLUICE_ABI_MAJOR_OF(v) ((uint32_t)(v) >> 16)
#define SLUICE_ABI_MINOR_OF(v) ((uint32_t)(v)&0xffffu)

/* The one symbol a plugin exports. */
#define SLUICE_PLUGIN_ENTRY_SYMBOL "sluice_plugin_entry"

#if defined(__GNUC__)
#define SLUICE_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define SLUICE_PLUGIN_EXPORT
#endif

/* A borrowed UTF-8 string view. */
typedef struct sluice_str {
  const char* ptr;
  size_t len;
} sluice_str;

/* Statuses returned by plugin functions. */
typedef enum sluice_status {
  SLUICE_OK = 0,
  SLUICE_ERR_INVALID_ARGUMENT = 1, /* bad config or tool arguments */
  SLUICE_ERR_NOT_FOUND = 2,
  SLUICE_ERR_UNAVAILABLE = 3, /* a dependency (database, service) is down */
  SLUICE_ERR_INTERNAL = 4     /* anything else, including a caught exception */
} sluice_status;

typedef enum sluice_log_level {
  SLUICE_LOG_DEBUG = 1,
  SLUICE_LOG_INFO = 2,
  SLUICE_LOG_WARN = 3,
  SLUICE_LOG_ERROR = 4
} sluice_log_level;

/* Moderation verdict actions (see sluice_host_v1.verdict_*). */
typedef enum sluice_action {
  SLUICE_PASS = 0,    /* release the pending text (keeping `hold` bytes back) */
  SLUICE_HOLD = 1,    /* keep all pending text back: more text is needed */
  SLUICE_REPLACE = 2, /* release replacement text instead (keeping `hold` bytes back) */
  SLUICE_STOP = 3     /* drop the pending text and end the answer */
} sluice_action;

/* Flags passed to sluice_moderator_v1.on_text. */
#define SLUICE_TEXT_FINAL 1u /* the answer ends: decide on all pending text, no hold */
#define SLUICE_TEXT_FLUSH 2u /* the hold-back limit (bytes or time) is reached: no hold */

/* Opaque host objects, passed back to host functions. */
typedef struct sluice_plugin_ctx sluice_plugin_ctx;   /* one per loaded plugin */
typedef struct sluice_tool_result sluice_tool_result; /* one per tool call */
typedef struct sluice_verdict sluice_verdict;         /* one per on_text call */

/*
 * What the host offers a plugin. Valid from sluice_plugin_entry until the
 * plugin is unloaded. Functions added in later minors are at the end; check
 * `struct_size` (offsetof the field + its size) before calling one.
 */
typedef struct sluice_host_v1 {
  uint32_t struct_size;
  uint32_t abi_version;

  /* Logging, into the gateway's log, tagged with the plugin's name. */
  void (*log)(sluice_plugin_ctx* ctx, int32_t level, sluice_str message);
  /* The plugin's settings from the gateway config, as one JSON object
   * ("{}" when none); the host owns it; valid until destroy. */
  sluice_str (*config_json)(sluice_plugin_ctx* ctx);
  /* Why create or self_test failed, for the operator (copied). */
  void (*set_error)(sluice_plugin_ctx* ctx, sluice_str message);
  /* Adds `value` (>= 0) to the plugin's counter `name` ([a-z0-9_]{1,64}),
   * exported with the gateway's metrics under the plugin's name. */
  void (*counter_add)(sluice_plugin_ctx* ctx, sluice_str name, double value);

  /* Tool results. The JSON text the model reads (any JSON value; copied). */
  void (*result_set_json)(sluice_tool_result* result, sluice_str json);
  /* A source the answer rests on, shown to the user as a card (copied). */
  void (*result_add_source)(sluice_tool_result* result, sluice_str title, sluice_str url,
                            sluice_str snippet);
  /* Why the call failed, for the model and the operator (copied). */
  void (*result_set_error)(sluice_tool_result* result, sluice_str message);

  /* Moderation verdicts: exactly one per on_text call (none is SLUICE_PASS
   * with no hold). `hold` is how many trailing bytes of the pending text
   * stay held; it is ignored with SLUICE_TEXT_FINAL or SLUICE_TEXT_FLUSH. */
  void (*verdict_pass)(sluice_verdict* verdict, size_t hold);
  void (*verdict_hold)(sluice_verdict* verdict);
  /* The released part of the pending text (all but `hold` trailing bytes)
   * becomes `text`; `reason` (say "email", "phone", "banned_phrase") is
   * shown to the client in a `moderation` event, never the original text. */
  void (*verdict_replace)(sluice_verdict* verdict, sluice_str text, size_t hold, sluice_str reason);
  /* The answer ends with finish_reason "content_filter"; `reason` as above. */
  void (*verdict_stop)(sluice_verdict* verdict, sluice_str reason);

  /* 1.1. A long tool checks these between steps: whether the call was
   * abandoned (its deadline passed, or the gateway is stopping: its result
   * will be discarded, so stop), and how many milliseconds are left before
   * its deadline (0 once past it). */
  int32_t (*result_cancelled)(const sluice_tool_result* result);
  uint64_t (*result_time_left_ms)(const sluice_tool_result* result);

  /* 1.2. A retriever's passage (copied; at most 32 per call, best first).
   * `id`: stable and unique within the retriever ("en/shipping#germany");
   * `title`, `url` (may be empty), `text`: the passage the model reads
   * (at most 4 KiB); `score`: higher is better, comparable between the
   * retriever's own passages; `metadata_json`: a JSON object, or empty. */
  void (*result_add_passage)(sluice_tool_result* result, sluice_str id, sluice_str title, sluice_str url,
                             sluice_str text, double score, sluice_str metadata_json);
} sluice_host_v1;

/* A tool the model may call. */
typedef struct sluice_tool_v1 {
  uint32_t struct_size;
  const char* name;        /* [A-Za-z0-9_-]{1,64}, unique in the gateway */
  const char* description; /* for the model */
  const char* parameters_schema_json; /* JSON Schema of the arguments object */
  /* Runs the tool on `args_json` (already checked against the schema) and
   * writes the result with host->result_*. A status other than SLUICE_OK
   * becomes a tool error the model sees (with host->result_set_error's text). */
  int32_t (*invoke)(void* instance, sluice_str args_json, sluice_tool_result* result);

  /* 1.1. The tool's own deadline in ms when shorter than the host's
   * (tools.timeout_ms); 0: the host's. */
  uint32_t timeout_ms;
} sluice_tool_v1;

/* A moderator: sees every text delta of every answer before any client. */
typedef struct sluice_moderator_v1 {
  uint32_t struct_size;
  const char* name;
  /* One stream per answer; `*stream` is the plugin's state for it. */
  int32_t (*stream_open)(void* instance, void** stream);
  /* `pending` is the text held back so far followed by the new text, which
   * starts at byte `new_from` (bytes before it were seen in earlier calls).
   * Decide with one host->verdict_* call. `flags`: SLUICE_TEXT_*. A status
   * other than SLUICE_OK fails closed: the answer stops (unless the
   * operator set the plugin to fail open). */
  int32_t (*on_text)(void* instance, void* stream, sluice_str pending, size_t new_from,
                     uint32_t flags, sluice_verdict* verdict);
  void (*stream_close)(void* instance, void* stream);
} sluice_moderator_v1;

/* 1.2. A retriever: before the model answers a question, the gateway asks
 * it for the passages of a knowledge base that the answer can rest on.
 * `request_json` is one object:
 *   {"query": "and for Germany?",
 *    "conversation": [{"role": "user", "content": "How long does shipping to France take?"},
 *                     {"role": "assistant", "content": "..."}],
 *    "top_k": 3}
 * `conversation`: the turn's earlier messages (the latest last, at most a
 * few), for a follow-up question that only makes sense with them; `top_k`:
 * how many passages the gateway will use. The retriever writes passages
 * with host->result_add_passage into `result` (host->result_cancelled and
 * result_time_left_ms work as for tools); none is a valid answer. A status
 * other than SLUICE_OK (with host->result_set_error) is logged and the
 * answer goes on without this retriever's passages. */
typedef struct sluice_retriever_v1 {
  uint32_t struct_size;
  const char* name; /* [a-z0-9_]{1,64} */
  const char* description;
  int32_t (*retrieve)(void* instance, sluice_str request_json, sluice_tool_result* result);
  /* The retriever's own deadline in ms when shorter than the host's
   * (retrieval.timeout_ms); 0: the host's. */
  uint32_t timeout_ms;
} sluice_retriever_v1;

/* What a plugin is and offers; static in the plugin, never freed. */
typedef struct sluice_plugin_v1 {
  uint32_t struct_size;
  uint32_t abi_version; /* SLUICE_PLUGIN_ABI_VERSION the plugin was built with */
  const char* name;     /* [a-z0-9_]{1,64} */
  const char* version;  /* the plugin's own version, e.g. "1.2.0" */
  const char* description;

  /* Makes an instance from the plugin's settings (also host->config_json).
   * On failure: a status other than SLUICE_OK, with host->set_error's text. */
  int32_t (*create)(sluice_plugin_ctx* ctx, sluice_str config_json, void** instance);
  void (*destroy)(void* instance);

  const sluice_tool_v1* const* tools; /* `tool_count` pointers */
  uint32_t tool_count;
  const sluice_moderator_v1* const* moderators;
  uint32_t moderator_count;

  /* Optional (may be NULL): checks the instance works, for
   * sluice-plugin-check. SLUICE_OK or an error with host->set_error. */
  int32_t (*self_test)(void* instance);

  /* 1.2. */
  const sluice_retriever_v1* const* retrievers; /* `retriever_count` pointers */
  uint32_t retriever_count;
} sluice_plugin_v1;

/* The entry point; `host` is valid until the plugin is unloaded. Returns
 * NULL when the plugin cannot work with this host (its major version). */
typedef const sluice_plugin_v1* (*sluice_plugin_entry_fn)(const sluice_host_v1* host);

/* Where `field` of `type` ends: a struct whose struct_size reaches it has it. */
#define SLUICE_END_OF(type, field) (offsetof(type, field) + sizeof(((type*)0)->field))
#define SLUICE_HAS_FIELD(ptr, type, field) ((size_t)(ptr)->struct_size >= SLUICE_END_OF(type, field))

/* The 1.0 layouts' sizes, frozen: the least a host of major 1 accepts. */
#define SLUICE_HOST_V1_0_SIZE SLUICE_END_OF(sluice_host_v1, verdict_stop)
#define SLUICE_TOOL_V1_0_SIZE SLUICE_END_OF(sluice_tool_v1, invoke)
#define SLUICE_MODERATOR_V1_0_SIZE SLUICE_END_OF(sluice_moderator_v1, stream_close)
#define SLUICE_PLUGIN_V1_0_SIZE SLUICE_END_OF(sluice_plugin_v1, self_test)
#define SLUICE_RETRIEVER_V1_2_SIZE SLUICE_END_OF(sluice_retriever_v1, timeout_ms)

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SLUICE_PLUGIN_H */
