// upload: resumable document uploads. A Manager keeps each upload's state, streams its bytes
// to a Storage (temporary file, running SHA-256, fsync + atomic rename when complete), keeps a
// state record beside them so uploads survive restarts, enforces the limits and reports
// progress. Both the WebSocket and the tus paths call it from any thread;
// all disk I/O and every callback run on the manager's own I/O thread, so callers post back.
#pragma once

#include "core/core.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sg::upload {

enum class UploadError {
  kNotFound = 1,      // unknown id, or another user's upload (never distinguished)
  kTooLarge,          // declared size over --upload-max-bytes, or more bytes than declared
  kOffsetMismatch,    // append/truncate at an offset other than what the upload allows
  kChecksumMismatch,  // the complete file's SHA-256 differs from the declared one
  kStorage,           // the disk refused (full, permission, not a directory, …)
  kTooManyUploads,    // the user has --upload-max-per-user unfinished uploads
  kOrgQuota,          // the org's unfinished declared bytes would pass --upload-max-org-bytes
  kAlreadyComplete,   // bytes or a truncate for an upload that is complete
  kFailed,            // the upload failed earlier; it can't continue
  kExpired,           // removed by the expiry sweep while the caller still held its id
  kBadRequest,        // an unusable request (e.g. empty or over-long filename)
  kShuttingDown,      // the manager has stopped
};
std::string_view to_string(UploadError e);  // "not_found", "too_large", …
constexpr const char* error_domain(UploadError) {
  return "upload";
}
SG_DECLARE_ERROR_ENUM(UploadError)

using Sha256 = std::array<unsigned char, 32>;

// Parses 64 hex digits (either case); nullopt otherwise.
std::optional<Sha256> parse_sha256_hex(std::string_view hex);
std::string to_hex(const Sha256& digest);

struct Owner {
  std::string org;
  std::string user;
  friend bool operator==(const Owner&, const Owner&) = default;
};

struct CreateRequest {
  std::string filename;          // shown back to the user; never used as a path
  std::string content_type;      // free text, as the client sent it
  std::uint64_t size = 0;        // declared total bytes; the upload completes when it is reached
  std::optional<Sha256> sha256;  // when given, the complete file must match it
  // Opaque key/value pairs (tus Upload-Metadata), returned as given.
  std::vector<std::pair<std::string, std::string>> metadata;
};

enum class Status { kUploading, kComplete, kFailed };
std::string_view to_string(Status s);  // "uploading" | "complete" | "failed"

// A snapshot of one upload, taken on the manager's thread.
struct UploadInfo {
  std::string id;  // 32 hex characters, unguessable
  Owner owner;
  std::string filename;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> metadata;
  std::uint64_t size = 0;      // declared
  std::uint64_t received = 0;  // bytes stored so far
  Status status = Status::kUploading;
  std::string error;          // when failed: the UploadError reason ("checksum_mismatch", …)
  std::string error_message;  // when failed: a sentence for humans (what the disk said, …)
  std::string sha256;         // lowercase hex, when complete
  core::WallClock::time_point created_at;
  core::WallClock::time_point updated_at;
  core::WallClock::time_point expires_at;  // when an unfinished upload will be swept
  double bytes_per_second = 0;             // recent rate (about the last few seconds)
  std::optional<double> eta_seconds;       // nullopt when unknown (no recent bytes)
  // Which writer may append: 1 from create(), bumped by each claim().
  std::uint64_t lease = 0;

  // 0..100; a zero-byte upload counts as 100 once complete.
  double percent() const;
};

// An upload's bytes in progress. Used only from the manager's I/O thread. Errors are system
// error codes (errno) so messages say what the disk said. Holds an open file: the Manager keeps
// one only while bytes arrive (see Manager::checkpoint).
class StorageWriter {
 public:
  virtual ~StorageWriter() = default;
  virtual Result<void> append(std::string_view bytes) = 0;
  virtual Result<void> truncate(std::uint64_t size) = 0;
  // Reads up to out.size() bytes at `offset`; 0 at the end.
  virtual Result<std::size_t> read(std::uint64_t offset, std::span<char> out) = 0;
  virtual Result<std::uint64_t> size() = 0;
  virtual Result<void> sync() = 0;  // fdatasync
};

// A state record found on storage at start: the Manager's own text (upload/state.hpp).
struct StoredUpload {
  std::string id;
  std::string state;
  bool committed = false;  // the record of a complete upload, beside its committed object
};

// Where upload bytes and their state records live: a temporary object and record while
// uploading, a final object and record once complete. An interface so an object store can
// replace the local disk.
class Storage {
 public:
  virtual ~Storage() = default;
  // Creates (or truncates) the temporary object for `id` and opens it.
  virtual Result<std::unique_ptr<StorageWriter>> begin(std::string_view id) = 0;
  // Opens the existing temporary object of `id` to append to it.
  virtual Result<std::unique_ptr<StorageWriter>> open(std::string_view id) = 0;
  // Durably replaces the state record of the unfinished upload `id`: after a crash the record
  // is the old one or this one, never a mix.
  virtual Result<void> save_state(std::string_view id, std::string_view state) = 0;
  // Moves the temporary object into place under `name` atomically, with `state` as its
  // record, and drops the unfinished record; the writer must have been synced and closed
  // (destroyed) first.
  virtual Result<void> commit(std::string_view id, std::string_view name,
                              std::string_view state) = 0;
  // Removes the temporary object of `id` and its record, if any. Never fails loudly: a
  // leftover is harmless (the orphan sweep gets it).
  virtual void remove(std::string_view id) = 0;
  // Removes the committed object `name` and its record (termination of a complete upload).
  virtual Result<void> remove_committed(std::string_view name) = 0;
  // Removes only the record of the committed object `name`: the file stays.
  virtual void forget_committed(std::string_view name) = 0;
  // Every state record on storage, at start. Finishes a commit a crash interrupted.
  virtual std::vector<StoredUpload> load() = 0;
  // The ids that have a temporary object or record, for the orphan sweep.
  virtual std::vector<std::string> temporaries() = 0;
  // Human-readable location of a committed object (a path for local storage), for logs.
  virtual std::string describe(std::string_view name) const = 0;
};

// Local disk: an unfinished upload is <dir>/.partial/<id> with its record <id>.info beside it,
// a complete one <dir>/<name> with <dir>/<name>.info. Creates the directories; fails when they
// can't be created.
Result<std::unique_ptr<Storage>> make_local_storage(const std::string& dir);

struct ManagerOptions {
  // --upload-max-bytes: largest declared size. 10 GiB: documents are "up to several GiB".
  std::uint64_t max_bytes = 10ull << 30;
  // --upload-max-per-user: unfinished uploads per user. 16 is more than any UI runs at once.
  std::size_t max_per_user = 16;
  // --upload-max-org-bytes: declared bytes of an org's unfinished uploads together. 50 GiB.
  std::uint64_t max_org_bytes = 50ull << 30;
  // --upload-expiry: an unfinished upload untouched this long is removed; finished records are
  // forgotten after the same time (their files stay).
  std::chrono::seconds expiry{24 * 3600};
  // --upload-sweep-interval: how often expired uploads and orphaned files (no record names
  // them) are removed; min(expiry / 4, 60 s) when zero.
  std::chrono::milliseconds sweep_interval{0};
  // An unfinished upload's file is closed once no byte arrived for this long (or at once by
  // checkpoint()), so idle uploads hold no file descriptor.
  std::chrono::milliseconds idle_close{2000};
  // Observer cadence: at least every progress_bytes or progress_interval while bytes arrive.
  std::uint64_t progress_bytes = 1 << 20;
  std::chrono::milliseconds progress_interval{250};
};

// The sentence for people that goes with `e` on every path that reports it (the WebSocket's error
// message, tus's JSON body): one table, so that both say the same. The limits it names are
// `limits`' max_bytes, max_per_user and max_org_bytes. `uploading`: the upload was receiving
// bytes, which tells kTooLarge's two causes apart (more bytes than declared, or a declared size
// over --upload-max-bytes). Callers may append their own detail.
std::string describe(UploadError e, const ManagerOptions& limits, bool uploading);

// Called on the manager's thread: when an upload is created, while bytes arrive (see
// ManagerOptions), and once when it completes or fails. Must be quick (post elsewhere) and must not
// call back into the manager synchronously.
using Observer = std::function<void(const UploadInfo&)>;

template <class T>
using Callback = std::function<void(Result<T>)>;

// Thread-safe. Every callback runs on the manager's I/O thread, exactly once (with
// kShuttingDown after stop()).
//
// Survives restarts: each upload's state is kept in a record beside its data. The record of an
// unfinished upload holds the offset of its last checkpoint(), so after a crash the upload
// resumes from the last offset a client was told (the data beyond it is cut off at start);
// the running SHA-256 is rebuilt from the stored bytes when the upload next receives any.
class Manager {
 public:
  virtual ~Manager() = default;

  // Checks the limits, begins storage and returns the new upload (received 0). A zero-byte
  // upload completes at once.
  virtual void create(Owner owner, CreateRequest request, Callback<UploadInfo> done) = 0;

  // kNotFound for an unknown id and for another owner's upload alike.
  virtual void find(Owner owner, std::string id, Callback<UploadInfo> done) = 0;

  // Appends `bytes` at `offset`, which must equal `received` (kOffsetMismatch otherwise,
  // nothing changes). Bytes past the declared size: kTooLarge and the upload fails. When
  // received reaches size the upload is synced, verified and committed before `done` runs:
  // the result then has status complete or failed (kChecksumMismatch, kStorage). A disk error
  // fails the upload (kStorage) and removes its partial data.
  virtual void append(Owner owner, std::string id, std::uint64_t offset, std::string bytes,
                      Callback<UploadInfo> done) = 0;

  // find() that also takes the upload over for the caller (a client resuming on a new
  // connection): bumps its lease, so append_leased() from an older holder — the dropped
  // connection whose last bytes are still being read — gets kOffsetMismatch and can't move the
  // offset the new writer was just given.
  virtual void claim(Owner owner, std::string id, Callback<UploadInfo> done) = 0;

  // append() for the writer holding `lease` (from create() or claim()); an older lease gets
  // kOffsetMismatch and changes nothing.
  virtual void append_leased(Owner owner, std::string id, std::uint64_t lease, std::uint64_t offset,
                             std::string bytes, Callback<UploadInfo> done) = 0;

  // Cuts an unfinished upload back to `offset` (≤ received) and rebuilds the running hash from
  // what is stored: tus rolls back a PATCH whose Upload-Checksum failed this way.
  virtual void truncate(Owner owner, std::string id, std::uint64_t offset,
                        Callback<UploadInfo> done) = 0;

  // Makes every byte received so far durable (data synced, then the record saved with the
  // new offset) and closes the upload's file. Callers acknowledge an offset to a client only
  // after this answered with it: that is what survives a crash. A complete upload answers as
  // find(); a failed one with its error.
  virtual void checkpoint(Owner owner, std::string id, Callback<UploadInfo> done) = 0;

  // Forgets the upload and frees its storage: the partial data of an unfinished one, the file
  // of a complete one (kStorage, and the record stays, when the disk refuses to delete it).
  virtual void remove(Owner owner, std::string id, Callback<void> done) = 0;

  // Stops the I/O thread after the queued work; later calls get kShuttingDown. Idempotent.
  // Unfinished uploads stay on storage, resumable by the next process from their checkpoint.
  virtual void stop() = 0;

  // Unfinished uploads this node holds (created or reloaded, not yet complete, failed or
  // removed): "uploads in progress" for the metrics. Any thread.
  virtual std::size_t unfinished() const { return 0; }
};

// Loads the uploads `storage` holds (dropping expired ones and cutting data back to each
// record's offset), then starts the I/O thread. `observer` may be empty.
std::unique_ptr<Manager> make_manager(const ManagerOptions& options,
                                      std::unique_ptr<Storage> storage, Observer observer);

}  // namespace sg::upload

template <>
struct boost::system::is_error_code_enum<sg::upload::UploadError> : std::true_type {};
