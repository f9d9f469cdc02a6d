// The upload Manager: upload records, limits, the running hash and the expiry sweep, all on
// one I/O thread so the records need no lock and a slow disk never stalls a network worker.
#include "log/log.hpp"
#include "upload/rate.hpp"
#include "upload/state.hpp"
#include "upload/upload.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <atomic>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace sg::upload {

namespace {

namespace asio = boost::asio;
using Steady = std::chrono::steady_clock;

constexpr std::size_t kMaxFilenameBytes = 1024;
constexpr std::size_t kMaxContentTypeBytes = 256;
constexpr std::size_t kMaxMetadataBytes = 8192;
// Finished records (complete or failed) are kept for `expiry` so progress can still be read;
// beyond this many the oldest are forgotten first, so a stream of tiny uploads can't grow
// memory without bound.
constexpr std::size_t kMaxFinishedRecords = 10000;
constexpr std::size_t kRehashChunk = 1 << 20;

struct Entry {
  UploadInfo info;
  // While bytes arrive; closed by checkpoint() and after options.idle_close without a write.
  std::unique_ptr<StorageWriter> writer;
  std::optional<Sha256> expected;
  core::Digest hash;  // SHA-256
  // False for an upload loaded at start until its stored bytes are hashed again (lazily, on
  // the first bytes it receives: a restart doesn't read every partial file).
  bool hash_valid = true;
  std::uint64_t persisted = 0;  // the offset in the upload's record on storage
  Steady::time_point written;   // the last append, for the idle close
  RateMeter rate;
  Steady::time_point touched;
  Steady::time_point notified_at;
  std::uint64_t notified_bytes = 0;
};

std::string user_key(const Owner& o) {
  std::string k = o.org;
  k.push_back('\0');
  k += o.user;
  return k;
}

ErrorCode err(UploadError e) {
  return make_error_code(e);
}

class ManagerImpl final : public Manager {
 public:
  ManagerImpl(const ManagerOptions& options, std::unique_ptr<Storage> storage, Observer observer)
      : options_(options),
        storage_(std::move(storage)),
        observer_(std::move(observer)),
        work_(asio::make_work_guard(io_)),
        sweep_timer_(io_),
        idle_timer_(io_) {
    if (options_.sweep_interval.count() <= 0) {
      options_.sweep_interval = std::min<std::chrono::milliseconds>(
          std::chrono::duration_cast<std::chrono::milliseconds>(options_.expiry) / 4,
          std::chrono::seconds(60));
      if (options_.sweep_interval.count() <= 0) options_.sweep_interval = std::chrono::seconds(1);
    }
    if (options_.idle_close.count() <= 0) options_.idle_close = std::chrono::milliseconds(1);
    // Before the thread starts: nothing else touches the records yet.
    load();
    sweep_orphans();
    schedule_sweep();
    schedule_idle_close();
    thread_ = std::thread([this] { io_.run(); });
  }

  ~ManagerImpl() override { stop(); }

  void create(Owner owner, CreateRequest request, Callback<UploadInfo> done) override {
    submit(done, [this, owner = std::move(owner), request = std::move(request), done]() mutable {
      done(do_create(std::move(owner), std::move(request)));
    });
  }

  void find(Owner owner, std::string id, Callback<UploadInfo> done) override {
    submit(done, [this, owner = std::move(owner), id = std::move(id), done] {
      auto* e = lookup(owner, id);
      if (!e) return done(err(UploadError::kNotFound));
      done(snapshot(*e));
    });
  }

  void claim(Owner owner, std::string id, Callback<UploadInfo> done) override {
    submit(done, [this, owner = std::move(owner), id = std::move(id), done] {
      auto* e = lookup(owner, id);
      if (!e) return done(err(UploadError::kNotFound));
      ++e->info.lease;
      // The offset the new holder is told is an acknowledgment: make it durable first.
      if (e->info.status == Status::kUploading) {
        if (auto r = do_checkpoint(owner, id); !r) return done(r.error());
      }
      done(snapshot(*e));
    });
  }

  void append_leased(Owner owner, std::string id, std::uint64_t lease, std::uint64_t offset,
                     std::string bytes, Callback<UploadInfo> done) override {
    submit(done, [this, owner = std::move(owner), id = std::move(id), lease, offset,
                  bytes = std::move(bytes), done] {
      auto* e = lookup(owner, id);
      if (e != nullptr && e->info.lease != lease) return done(err(UploadError::kOffsetMismatch));
      done(do_append(owner, id, offset, bytes));
    });
  }

  void append(Owner owner, std::string id, std::uint64_t offset, std::string bytes,
              Callback<UploadInfo> done) override {
    submit(done, [this, owner = std::move(owner), id = std::move(id), offset,
                  bytes = std::move(bytes), done] { done(do_append(owner, id, offset, bytes)); });
  }

  void checkpoint(Owner owner, std::string id, Callback<UploadInfo> done) override {
    submit(done, [this, owner = std::move(owner), id = std::move(id), done] {
      done(do_checkpoint(owner, id));
    });
  }

  void truncate(Owner owner, std::string id, std::uint64_t offset,
                Callback<UploadInfo> done) override {
    submit(done, [this, owner = std::move(owner), id = std::move(id), offset, done] {
      done(do_truncate(owner, id, offset));
    });
  }

  void remove(Owner owner, std::string id, Callback<void> done) override {
    submit(done, [this, owner = std::move(owner), id = std::move(id), done] {
      auto* e = lookup(owner, id);
      if (!e) return done(err(UploadError::kNotFound));
      if (e->info.status == Status::kComplete) {
        if (auto r = storage_->remove_committed(id); !r) {
          log::error("upload", "could not delete a terminated upload's file",
                     {{"upload_id", id}, {"org", owner.org}, {"error", r.error().message()}});
          return done(err(UploadError::kStorage));
        }
      } else if (e->info.status == Status::kUploading) {
        e->writer.reset();
        storage_->remove(id);
        release(*e);
      }
      log::info("upload", "upload removed", {{"upload_id", id}, {"org", owner.org}});
      forget(id);
      done(Result<void>());
    });
  }

  void stop() override {
    {
      std::lock_guard lock(mutex_);
      if (stopped_) return;
      stopped_ = true;
    }
    // Runs after everything queued before. Unfinished uploads stay on storage with their
    // records: the next process resumes them from their last checkpoint.
    asio::post(io_, [this] {
      // A timer that already expired has its handler queued, where cancel() can't reach it:
      // the flag keeps that handler from arming the timer again (io_.run() would never end).
      stopping_ = true;
      sweep_timer_.cancel();
      idle_timer_.cancel();
      for (auto& [id, e] : entries_) e.writer.reset();
      work_.reset();
    });
    if (thread_.joinable()) thread_.join();
  }

 private:
  template <class T, class F>
  void submit(const Callback<T>& done, F&& job) {
    {
      std::lock_guard lock(mutex_);
      if (!stopped_) {
        asio::post(io_, std::forward<F>(job));
        return;
      }
    }
    done(err(UploadError::kShuttingDown));
  }

  Entry* lookup(const Owner& owner, const std::string& id) {
    auto it = entries_.find(id);
    if (it == entries_.end() || !(it->second.info.owner == owner)) return nullptr;
    return &it->second;
  }

  UploadInfo snapshot(const Entry& e) const {
    UploadInfo info = e.info;
    const auto now = Steady::now();
    if (e.info.status == Status::kUploading) {
      info.bytes_per_second = e.rate.rate(now);
      if (info.bytes_per_second > 0) {
        info.eta_seconds = static_cast<double>(info.size - info.received) / info.bytes_per_second;
      }
    } else if (e.info.status == Status::kComplete) {
      info.eta_seconds = 0.0;
    }
    return info;
  }

  Result<UploadInfo> do_create(Owner owner, CreateRequest request) {
    if (request.filename.size() > kMaxFilenameBytes ||
        request.content_type.size() > kMaxContentTypeBytes) {
      return err(UploadError::kBadRequest);
    }
    std::size_t meta_bytes = 0;
    for (const auto& [k, v] : request.metadata) meta_bytes += k.size() + v.size();
    if (meta_bytes > kMaxMetadataBytes) return err(UploadError::kBadRequest);
    if (request.size > options_.max_bytes) return err(UploadError::kTooLarge);
    const std::string ukey = user_key(owner);
    const auto user_it = per_user_.find(ukey);
    const std::size_t user_count = user_it == per_user_.end() ? 0 : user_it->second;
    const auto org_it = per_org_bytes_.find(owner.org);
    const std::uint64_t org_bytes = org_it == per_org_bytes_.end() ? 0 : org_it->second;
    if (options_.max_per_user > 0 && user_count >= options_.max_per_user) {
      log::warn("upload", "per-user upload limit hit", {{"org", owner.org}});
      return err(UploadError::kTooManyUploads);
    }
    if (options_.max_org_bytes > 0 && (request.size > options_.max_org_bytes ||
                                       org_bytes > options_.max_org_bytes - request.size)) {
      log::warn("upload", "org upload quota hit", {{"org", owner.org}});
      return err(UploadError::kOrgQuota);
    }

    std::string id = core::random_hex(16);
    auto writer = storage_->begin(id);
    if (!writer) {
      log::error("upload", "upload storage refused a new upload",
                 {{"org", owner.org}, {"error", writer.error().message()}});
      return err(UploadError::kStorage);
    }
    writer->reset();  // an idle upload holds no file; the first bytes open it again
    const auto wall = core::WallClock::now();
    Entry e;
    e.info.id = id;
    e.info.owner = std::move(owner);
    e.info.filename = std::move(request.filename);
    e.info.content_type = std::move(request.content_type);
    e.info.metadata = std::move(request.metadata);
    e.info.size = request.size;
    e.info.created_at = wall;
    e.info.updated_at = wall;
    e.info.expires_at = wall + options_.expiry;
    e.expected = request.sha256;
    e.touched = Steady::now();
    e.notified_at = e.touched;
    e.rate.add(e.touched, 0);
    e.info.lease = 1;
    if (auto r = storage_->save_state(id, serialize_state(e.info, e.expected)); !r) {
      storage_->remove(id);
      log::error("upload", "upload storage refused a new upload's record",
                 {{"org", e.info.owner.org}, {"error", r.error().message()}});
      return err(UploadError::kStorage);
    }
    auto& stored = entries_.emplace(id, std::move(e)).first->second;
    per_user_[ukey] += 1;
    unfinished_.fetch_add(1, std::memory_order_relaxed);
    per_org_bytes_[stored.info.owner.org] += stored.info.size;
    log::info("upload", "upload created",
              {{"upload_id", id}, {"org", stored.info.owner.org}, {"size", stored.info.size}});
    if (stored.info.size == 0) {
      finish(stored);
      if (stored.info.status == Status::kFailed) return error_of(stored);
    } else {
      notify(stored);  // other tabs learn of the new upload at once
    }
    return snapshot(stored);
  }

  Result<UploadInfo> do_append(const Owner& owner, const std::string& id, std::uint64_t offset,
                               const std::string& bytes) {
    auto* e = lookup(owner, id);
    if (!e) return err(UploadError::kNotFound);
    if (auto state = usable(*e); !state) return state.error();
    if (offset != e->info.received) return err(UploadError::kOffsetMismatch);
    if (bytes.size() > e->info.size - e->info.received) {
      fail(*e, UploadError::kTooLarge, "more bytes than the declared size");
      return err(UploadError::kTooLarge);
    }
    if (bytes.empty()) return snapshot(*e);
    if (auto r = prepare(*e); !r) return err(UploadError::kStorage);
    e->written = Steady::now();
    if (auto r = e->writer->append(bytes); !r) {
      fail(*e, UploadError::kStorage, "storage write failed: " + r.error().message());
      return err(UploadError::kStorage);
    }
    e->hash.update(bytes);
    e->info.received += bytes.size();
    touch(*e);
    if (e->info.received == e->info.size) {
      finish(*e);
      if (e->info.status == Status::kFailed) return error_of(*e);
      return snapshot(*e);
    }
    maybe_notify(*e);
    return snapshot(*e);
  }

  Result<UploadInfo> do_truncate(const Owner& owner, const std::string& id, std::uint64_t offset) {
    auto* e = lookup(owner, id);
    if (!e) return err(UploadError::kNotFound);
    if (auto state = usable(*e); !state) return state.error();
    if (offset > e->info.received) return err(UploadError::kOffsetMismatch);
    if (offset == e->info.received) return snapshot(*e);
    if (auto r = open_writer(*e); !r) return err(UploadError::kStorage);
    if (auto r = e->writer->truncate(offset); !r) {
      fail(*e, UploadError::kStorage, "storage truncate failed: " + r.error().message());
      return err(UploadError::kStorage);
    }
    // The hash can't be rewound, so it is rebuilt from what is stored.
    if (auto r = rehash(*e, offset); !r) return err(UploadError::kStorage);
    e->info.received = offset;
    e->rate = RateMeter();
    touch(*e);
    e->rate.add(e->touched, offset);
    e->notified_bytes = offset;
    // The record never names bytes that are gone (it can't be ahead of a PATCH being undone,
    // but a caller may cut further back).
    if (e->persisted > offset) {
      if (auto r = save(*e); !r) return err(UploadError::kStorage);
    }
    e->writer.reset();
    return snapshot(*e);
  }

  Result<UploadInfo> do_checkpoint(const Owner& owner, const std::string& id) {
    auto* e = lookup(owner, id);
    if (!e) return err(UploadError::kNotFound);
    if (e->info.status == Status::kComplete) return snapshot(*e);
    if (e->info.status == Status::kFailed) return error_of(*e);
    if (e->info.received != e->persisted) {
      // Data first, then the record that claims it.
      if (auto r = open_writer(*e); !r) return err(UploadError::kStorage);
      if (auto r = e->writer->sync(); !r) {
        fail(*e, UploadError::kStorage, "storage sync failed: " + r.error().message());
        return err(UploadError::kStorage);
      }
      if (auto r = save(*e); !r) return err(UploadError::kStorage);
    }
    e->writer.reset();
    return snapshot(*e);
  }

  // Opens the upload's file if it isn't open; a refusal fails the upload.
  Result<void> open_writer(Entry& e) {
    if (e.writer) return {};
    auto w = storage_->open(e.info.id);
    if (!w) {
      fail(e, UploadError::kStorage, "storage open failed: " + w.error().message());
      return err(UploadError::kStorage);
    }
    e.writer = std::move(*w);
    return {};
  }

  // Ready to append: the file open and the running hash covering every stored byte.
  Result<void> prepare(Entry& e) {
    if (auto r = open_writer(e); !r) return r;
    if (e.hash_valid) return {};
    return rehash(e, e.info.received);
  }

  // Hashes the first `upto` stored bytes again; a short or failed read fails the upload.
  Result<void> rehash(Entry& e, std::uint64_t upto) {
    e.hash.reset();
    std::string chunk(kRehashChunk, '\0');
    std::uint64_t pos = 0;
    while (pos < upto) {
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), upto - pos));
      auto n = e.writer->read(pos, std::span(chunk.data(), want));
      if (!n || *n == 0) {
        fail(e, UploadError::kStorage,
             n ? std::string("storage read came up short")
               : "storage read failed: " + n.error().message());
        return err(UploadError::kStorage);
      }
      e.hash.update(std::string_view(chunk.data(), *n));
      pos += *n;
    }
    e.hash_valid = true;
    return {};
  }

  // Writes the upload's record with its current offset; a refusal fails the upload.
  Result<void> save(Entry& e) {
    if (auto r = storage_->save_state(e.info.id, serialize_state(e.info, e.expected)); !r) {
      fail(e, UploadError::kStorage, "storage record write failed: " + r.error().message());
      return err(UploadError::kStorage);
    }
    e.persisted = e.info.received;
    return {};
  }

  Result<void> usable(const Entry& e) const {
    if (e.info.status == Status::kComplete) return err(UploadError::kAlreadyComplete);
    if (e.info.status == Status::kFailed) {
      return err(e.info.error == to_string(UploadError::kExpired) ? UploadError::kExpired
                                                                  : UploadError::kFailed);
    }
    return {};
  }

  ErrorCode error_of(const Entry& e) const {
    for (auto code : {UploadError::kChecksumMismatch, UploadError::kStorage, UploadError::kTooLarge,
                      UploadError::kExpired}) {
      if (e.info.error == to_string(code)) return err(code);
    }
    return err(UploadError::kFailed);
  }

  void touch(Entry& e) {
    e.touched = Steady::now();
    e.rate.add(e.touched, e.info.received);
    e.info.updated_at = core::WallClock::now();
    e.info.expires_at = e.info.updated_at + options_.expiry;
  }

  void maybe_notify(Entry& e) {
    if (!observer_) return;
    const auto now = Steady::now();
    if (e.info.received - e.notified_bytes >= options_.progress_bytes ||
        now - e.notified_at >= options_.progress_interval) {
      notify(e);
    }
  }

  void notify(Entry& e) {
    e.notified_bytes = e.info.received;
    e.notified_at = Steady::now();
    if (observer_) observer_(snapshot(e));
  }

  // received == size: make it durable, check it, move it into place.
  void finish(Entry& e) {
    if (auto r = prepare(e); !r) return;
    if (auto r = e.writer->sync(); !r) {
      return fail(e, UploadError::kStorage, "storage sync failed: " + r.error().message());
    }
    e.writer.reset();
    Sha256 digest;
    const std::string raw = e.hash.finish();
    std::copy(raw.begin(), raw.end(), digest.begin());
    if (e.expected && *e.expected != digest) {
      return fail(
          e, UploadError::kChecksumMismatch,
          "the file's SHA-256 is " + to_hex(digest) + ", not the declared " + to_hex(*e.expected));
    }
    UploadInfo complete = e.info;
    complete.status = Status::kComplete;
    complete.sha256 = to_hex(digest);
    if (auto r = storage_->commit(e.info.id, e.info.id, serialize_state(complete, e.expected));
        !r) {
      return fail(e, UploadError::kStorage, "storage commit failed: " + r.error().message());
    }
    e.info.status = Status::kComplete;
    e.info.sha256 = complete.sha256;
    e.persisted = e.info.received;
    release(e);
    log::info("upload", "upload complete",
              {{"upload_id", e.info.id}, {"org", e.info.owner.org}, {"size", e.info.size}});
    finished_.push_back(e.info.id);
    notify(e);
    trim_finished();
  }

  void fail(Entry& e, UploadError code, std::string message) {
    e.writer.reset();
    storage_->remove(e.info.id);
    e.info.status = Status::kFailed;
    e.info.error = std::string(to_string(code));
    e.info.error_message = std::move(message);
    e.info.updated_at = core::WallClock::now();
    e.info.expires_at = e.info.updated_at + options_.expiry;
    release(e);
    (code == UploadError::kStorage ? log::error : log::warn)("upload", "upload failed",
                                                             {{"upload_id", e.info.id},
                                                              {"org", e.info.owner.org},
                                                              {"reason", e.info.error},
                                                              {"detail", e.info.error_message}});
    finished_.push_back(e.info.id);
    notify(e);
    trim_finished();
  }

  // Gives back the limits an unfinished upload held.
  void release(const Entry& e) {
    const std::string ukey = user_key(e.info.owner);
    if (auto it = per_user_.find(ukey); it != per_user_.end()) {
      unfinished_.fetch_sub(1, std::memory_order_relaxed);
      if (--it->second == 0) per_user_.erase(it);
    }
    if (auto it = per_org_bytes_.find(e.info.owner.org); it != per_org_bytes_.end()) {
      it->second -= std::min(it->second, e.info.size);
      if (it->second == 0) per_org_bytes_.erase(it);
    }
  }

  void forget(const std::string& id) {
    entries_.erase(id);
    // finished_ may keep the id; trim and sweep skip ids that are gone.
  }

  // Forgets a finished record; a complete upload's file stays, its record on storage goes.
  void forget_finished(const std::string& id) {
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    if (it->second.info.status == Status::kComplete) storage_->forget_committed(id);
    entries_.erase(it);
  }

  void trim_finished() {
    while (finished_.size() > kMaxFinishedRecords) {
      forget_finished(finished_.front());
      finished_.pop_front();
    }
  }

  void schedule_sweep() {
    sweep_timer_.expires_after(options_.sweep_interval);
    sweep_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopping_) return;
      sweep();
      schedule_sweep();
    });
  }

  void sweep() {
    const auto now = Steady::now();
    const auto wall = core::WallClock::now();
    std::vector<std::string> expired;
    std::vector<std::string> gone;
    for (auto& [id, e] : entries_) {
      if (e.info.status == Status::kUploading) {
        if (now - e.touched >= options_.expiry) expired.push_back(id);
      } else if (wall >= e.info.expires_at) {
        gone.push_back(id);
      }
    }
    for (const auto& id : gone) forget_finished(id);
    // fail() may trim finished records, so it runs outside the walk over entries_.
    for (const auto& id : expired) {
      auto it = entries_.find(id);
      if (it == entries_.end()) continue;
      log::info("upload", "upload expired",
                {{"upload_id", id}, {"org", it->second.info.owner.org}});
      fail(it->second, UploadError::kExpired,
           "the upload was untouched for longer than the expiry");
    }
    std::erase_if(finished_, [this](const std::string& id) { return !entries_.contains(id); });
    sweep_orphans();
  }

  // Files no unfinished upload owns: a crash between creating the data and its first record,
  // or leftovers of a removal that failed. Runs on the I/O thread (or before it starts), where
  // every upload is created, so a file being created can't be mistaken for an orphan.
  void sweep_orphans() {
    for (const auto& id : storage_->temporaries()) {
      auto it = entries_.find(id);
      if (it != entries_.end() && it->second.info.status == Status::kUploading) continue;
      log::info("upload", "orphaned upload data removed", {{"upload_id", id}});
      storage_->remove(id);
    }
  }

  void schedule_idle_close() {
    idle_timer_.expires_after(options_.idle_close / 2 + std::chrono::milliseconds(1));
    idle_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopping_) return;
      const auto now = Steady::now();
      for (auto& [id, e] : entries_) {
        if (e.writer && now - e.written >= options_.idle_close) e.writer.reset();
      }
      schedule_idle_close();
    });
  }

  // Rebuilds the records from storage (constructor only).
  void load() {
    const auto wall = core::WallClock::now();
    const auto now = Steady::now();
    std::size_t unfinished = 0;
    std::size_t complete = 0;
    for (auto& stored : storage_->load()) {
      auto saved = parse_state(stored.state);
      if (!saved || saved->info.id != stored.id) {
        log::warn("upload", "unreadable upload record dropped", {{"upload_id", stored.id}});
        if (stored.committed) {
          storage_->forget_committed(stored.id);
        } else {
          storage_->remove(stored.id);
        }
        continue;
      }
      if (stored.committed != (saved->info.status == Status::kComplete)) {
        if (stored.committed) storage_->forget_committed(stored.id);
        if (!stored.committed) storage_->remove(stored.id);
        continue;
      }
      if (wall >= saved->info.expires_at) {
        if (stored.committed) {
          storage_->forget_committed(stored.id);
        } else {
          log::info("upload", "upload expired while the server was down",
                    {{"upload_id", stored.id}, {"org", saved->info.owner.org}});
          storage_->remove(stored.id);
        }
        continue;
      }
      Entry e;
      e.info = std::move(saved->info);
      e.expected = saved->expected;
      e.info.lease = 1;
      e.persisted = e.info.received;
      const auto idle = std::max(core::WallClock::duration::zero(), wall - e.info.updated_at);
      e.touched = now - std::chrono::duration_cast<Steady::duration>(idle);
      e.notified_at = now;
      e.notified_bytes = e.info.received;
      if (e.info.status == Status::kUploading && !trust_data(e)) {
        storage_->remove(e.info.id);
        continue;
      }
      e.hash_valid = e.info.received == 0;
      const std::string id = e.info.id;
      auto& entry = entries_.emplace(id, std::move(e)).first->second;
      if (entry.info.status == Status::kComplete) {
        finished_.push_back(id);
        ++complete;
      } else {
        per_user_[user_key(entry.info.owner)] += 1;
        unfinished_.fetch_add(1, std::memory_order_relaxed);
        per_org_bytes_[entry.info.owner.org] += entry.info.size;
        ++unfinished;
      }
    }
    trim_finished();
    if (unfinished + complete > 0) {
      log::info("upload", "uploads reloaded", {{"unfinished", unfinished}, {"complete", complete}});
    }
  }

  // A reloaded upload's data holds at least its record's offset: cut it back to exactly that
  // (bytes past the last checkpoint were never acknowledged). False when it can't be used.
  bool trust_data(Entry& e) {
    auto w = storage_->open(e.info.id);
    auto size = w ? (*w)->size() : Result<std::uint64_t>(w.error());
    if (!size || *size < e.info.received) {
      log::error("upload", "upload data missing or shorter than its record; dropped",
                 {{"upload_id", e.info.id},
                  {"org", e.info.owner.org},
                  {"error", size ? std::string("short") : size.error().message()}});
      return false;
    }
    if (*size > e.info.received) {
      if (auto r = (*w)->truncate(e.info.received); !r) {
        log::error("upload", "could not cut reloaded upload data back to its record",
                   {{"upload_id", e.info.id}, {"error", r.error().message()}});
        return false;
      }
    }
    return true;
  }

  ManagerOptions options_;
  std::unique_ptr<Storage> storage_;
  Observer observer_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  asio::steady_timer sweep_timer_;
  asio::steady_timer idle_timer_;
  std::thread thread_;
  std::mutex mutex_;  // guards stopped_ against posting after the final job
  bool stopped_ = false;

  // Touched only on the I/O thread.
  bool stopping_ = false;
  std::unordered_map<std::string, Entry> entries_;
  std::unordered_map<std::string, std::size_t> per_user_;         // unfinished uploads
  std::unordered_map<std::string, std::uint64_t> per_org_bytes_;  // unfinished declared bytes
  std::deque<std::string> finished_;                              // oldest first
  // Written on the I/O thread, read by metrics scrapes on any.
  std::atomic<std::size_t> unfinished_{0};

 public:
  std::size_t unfinished() const override { return unfinished_.load(std::memory_order_relaxed); }
};

}  // namespace

std::unique_ptr<Manager> make_manager(const ManagerOptions& options,
                                      std::unique_ptr<Storage> storage, Observer observer) {
  return std::make_unique<ManagerImpl>(options, std::move(storage), std::move(observer));
}

}  // namespace sg::upload
