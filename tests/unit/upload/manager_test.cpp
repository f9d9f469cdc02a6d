#include "upload/upload.hpp"

#include "log/log.hpp"

#include <gtest/gtest.h>
#include <openssl/sha.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>
#include <thread>

namespace sg::upload {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string sha_hex(std::string_view data) {
  Sha256 d{};
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), d.data());
  return to_hex(d);
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs one manager call and waits for its callback (which runs on the manager's thread).
template <class T, class F>
Result<T> wait(F&& call) {
  std::promise<Result<T>> p;
  auto f = p.get_future();
  call([&p](Result<T> r) { p.set_value(std::move(r)); });
  return f.get();
}

class ManagerTest : public ::testing::Test {
 protected:
  ManagerTest() : dir_(fs::temp_directory_path() / ("sg-upload-" + core::random_hex(8))) {
    log::set_level(log::Level::kError);
  }
  ~ManagerTest() override {
    manager_.reset();
    fs::remove_all(dir_);
  }

  void start(ManagerOptions options = {}) {
    auto storage = make_local_storage(dir_.string());
    ASSERT_TRUE(storage);
    manager_ = make_manager(options, std::move(*storage), [this](const UploadInfo& info) {
      std::lock_guard lock(mutex_);
      observed_.push_back(info);
    });
  }

  Result<UploadInfo> create(const Owner& o, std::uint64_t size,
                            std::optional<std::string> sha = std::nullopt) {
    CreateRequest req;
    req.filename = "invoice.pdf";
    req.content_type = "application/pdf";
    req.size = size;
    if (sha) req.sha256 = parse_sha256_hex(*sha);
    return wait<UploadInfo>([&](auto cb) { manager_->create(o, req, cb); });
  }
  Result<UploadInfo> append(const Owner& o, const std::string& id, std::uint64_t offset,
                            std::string bytes) {
    return wait<UploadInfo>(
        [&](auto cb) { manager_->append(o, id, offset, std::move(bytes), cb); });
  }
  Result<UploadInfo> append_leased(const Owner& o, const std::string& id, std::uint64_t lease,
                                   std::uint64_t offset, std::string bytes) {
    return wait<UploadInfo>(
        [&](auto cb) { manager_->append_leased(o, id, lease, offset, std::move(bytes), cb); });
  }
  Result<UploadInfo> claim(const Owner& o, const std::string& id) {
    return wait<UploadInfo>([&](auto cb) { manager_->claim(o, id, cb); });
  }
  Result<UploadInfo> find(const Owner& o, const std::string& id) {
    return wait<UploadInfo>([&](auto cb) { manager_->find(o, id, cb); });
  }
  Result<UploadInfo> truncate(const Owner& o, const std::string& id, std::uint64_t offset) {
    return wait<UploadInfo>([&](auto cb) { manager_->truncate(o, id, offset, cb); });
  }
  Result<void> remove(const Owner& o, const std::string& id) {
    return wait<void>([&](auto cb) { manager_->remove(o, id, cb); });
  }
  fs::path partial(const std::string& id) const { return dir_ / ".partial" / id; }
  std::vector<UploadInfo> observed() {
    std::lock_guard lock(mutex_);
    return observed_;
  }

  Owner alice_{"456", "alice"};
  Owner bob_{"456", "bob"};
  Owner alice_other_org_{"789", "alice"};
  fs::path dir_;
  std::unique_ptr<Manager> manager_;
  std::mutex mutex_;
  std::vector<UploadInfo> observed_;
};

TEST_F(ManagerTest, StreamsChunksToAFileWithItsSha256) {
  start();
  const std::string data = "the quick brown fox jumps over the lazy dog";
  auto up = create(alice_, data.size());
  ASSERT_TRUE(up);
  EXPECT_EQ(up->id.size(), 32u);
  EXPECT_EQ(up->status, Status::kUploading);
  EXPECT_TRUE(fs::exists(partial(up->id)));
  auto r = append(alice_, up->id, 0, data.substr(0, 10));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->received, 10u);
  r = append(alice_, up->id, 10, data.substr(10));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->status, Status::kComplete);
  EXPECT_EQ(r->sha256, sha_hex(data));
  EXPECT_EQ(read_file(dir_ / up->id), data);
  EXPECT_FALSE(fs::exists(partial(up->id)));
  auto f = find(alice_, up->id);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->status, Status::kComplete);
  EXPECT_EQ(f->percent(), 100.0);
}

TEST_F(ManagerTest, CompletesWhenTheDeclaredChecksumMatches) {
  start();
  auto up = create(alice_, 3, sha_hex("abc"));
  ASSERT_TRUE(up);
  auto r = append(alice_, up->id, 0, "abc");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, Status::kComplete);
}

TEST_F(ManagerTest, WrongChecksumFailsTheUploadAndRemovesItsData) {
  start();
  auto up = create(alice_, 3, sha_hex("abd"));
  ASSERT_TRUE(up);
  auto r = append(alice_, up->id, 0, "abc");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), UploadError::kChecksumMismatch);
  EXPECT_FALSE(fs::exists(dir_ / up->id));
  EXPECT_FALSE(fs::exists(partial(up->id)));
  auto f = find(alice_, up->id);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->status, Status::kFailed);
  EXPECT_EQ(f->error, "checksum_mismatch");
  EXPECT_EQ(append(alice_, up->id, 3, "x").error(), UploadError::kFailed);
}

TEST_F(ManagerTest, AnotherUserGetsNotFoundEverywhere) {
  start();
  auto up = create(alice_, 10);
  ASSERT_TRUE(up);
  for (const Owner& other : {bob_, alice_other_org_}) {
    EXPECT_EQ(find(other, up->id).error(), UploadError::kNotFound);
    EXPECT_EQ(append(other, up->id, 0, "x").error(), UploadError::kNotFound);
    EXPECT_EQ(truncate(other, up->id, 0).error(), UploadError::kNotFound);
    EXPECT_EQ(remove(other, up->id).error(), UploadError::kNotFound);
  }
  EXPECT_EQ(find(alice_, "0123456789abcdef0123456789abcdef").error(), UploadError::kNotFound);
  auto f = find(alice_, up->id);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->received, 0u);
  EXPECT_EQ(f->status, Status::kUploading);
}

TEST_F(ManagerTest, WrongOffsetChangesNothing) {
  start();
  auto up = create(alice_, 10);
  ASSERT_TRUE(up);
  ASSERT_TRUE(append(alice_, up->id, 0, "12345"));
  EXPECT_EQ(append(alice_, up->id, 3, "45").error(), UploadError::kOffsetMismatch);
  EXPECT_EQ(append(alice_, up->id, 6, "7").error(), UploadError::kOffsetMismatch);
  auto r = append(alice_, up->id, 5, "67890");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, Status::kComplete);
  EXPECT_EQ(read_file(dir_ / up->id), "1234567890");
}

TEST_F(ManagerTest, ClaimingTakesTheUploadFromTheOldWriter) {
  start();
  auto up = create(alice_, 10);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->lease, 1u);
  ASSERT_TRUE(append_leased(alice_, up->id, up->lease, 0, "123"));
  auto taken = claim(alice_, up->id);
  ASSERT_TRUE(taken);
  EXPECT_EQ(taken->lease, 2u);
  EXPECT_EQ(taken->received, 3u);
  // The dropped connection's last bytes arrive late: refused, the new writer's offset holds.
  EXPECT_EQ(append_leased(alice_, up->id, 1, 3, "45").error(), UploadError::kOffsetMismatch);
  auto next = append_leased(alice_, up->id, taken->lease, 3, "4567890");
  ASSERT_TRUE(next);
  EXPECT_EQ(next->status, Status::kComplete);
  EXPECT_EQ(next->sha256, sha_hex("1234567890"));
  EXPECT_EQ(claim(bob_, up->id).error(), UploadError::kNotFound);
}

TEST_F(ManagerTest, MoreBytesThanDeclaredFailsTheUpload) {
  start();
  auto up = create(alice_, 4);
  ASSERT_TRUE(up);
  ASSERT_TRUE(append(alice_, up->id, 0, "12"));
  EXPECT_EQ(append(alice_, up->id, 2, "345").error(), UploadError::kTooLarge);
  EXPECT_FALSE(fs::exists(partial(up->id)));
  EXPECT_EQ(find(alice_, up->id)->error, "too_large");
  EXPECT_EQ(append(alice_, up->id, 2, "34").error(), UploadError::kFailed);
}

TEST_F(ManagerTest, BytesAfterCompleteAreRefused) {
  start();
  auto up = create(alice_, 2);
  ASSERT_TRUE(up);
  ASSERT_TRUE(append(alice_, up->id, 0, "ok"));
  EXPECT_EQ(append(alice_, up->id, 2, "more").error(), UploadError::kAlreadyComplete);
  EXPECT_EQ(truncate(alice_, up->id, 0).error(), UploadError::kAlreadyComplete);
  EXPECT_EQ(read_file(dir_ / up->id), "ok");
}

TEST_F(ManagerTest, ZeroByteUploadCompletesAtOnce) {
  start();
  auto up = create(alice_, 0);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->status, Status::kComplete);
  EXPECT_EQ(up->sha256, sha_hex(""));
  EXPECT_TRUE(fs::exists(dir_ / up->id));
}

TEST_F(ManagerTest, TruncateRollsBackBytesAndTheRunningHash) {
  start();
  auto up = create(alice_, 8);
  ASSERT_TRUE(up);
  ASSERT_TRUE(append(alice_, up->id, 0, "aaaa"));
  ASSERT_TRUE(append(alice_, up->id, 4, "bb"));
  EXPECT_EQ(truncate(alice_, up->id, 7).error(), UploadError::kOffsetMismatch);
  auto t = truncate(alice_, up->id, 4);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->received, 4u);
  auto r = append(alice_, up->id, 4, "cccc");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, Status::kComplete);
  EXPECT_EQ(r->sha256, sha_hex("aaaacccc"));
  EXPECT_EQ(read_file(dir_ / up->id), "aaaacccc");
}

TEST_F(ManagerTest, EnforcesMaxBytes) {
  ManagerOptions o;
  o.max_bytes = 100;
  start(o);
  EXPECT_EQ(create(alice_, 101).error(), UploadError::kTooLarge);
  EXPECT_TRUE(create(alice_, 100));
}

TEST_F(ManagerTest, EnforcesUnfinishedUploadsPerUserAndReleasesOnFinish) {
  ManagerOptions o;
  o.max_per_user = 2;
  start(o);
  auto a = create(alice_, 1);
  auto b = create(alice_, 1);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(create(alice_, 1).error(), UploadError::kTooManyUploads);
  EXPECT_TRUE(create(bob_, 1));                // per user, not per org
  ASSERT_TRUE(append(alice_, a->id, 0, "x"));  // complete: no longer counts
  auto c = create(alice_, 1);
  ASSERT_TRUE(c);
  ASSERT_TRUE(remove(alice_, b->id));  // removed: no longer counts
  EXPECT_TRUE(create(alice_, 1));
  EXPECT_EQ(create(alice_, 1).error(), UploadError::kTooManyUploads);
}

TEST_F(ManagerTest, EnforcesDeclaredBytesInFlightPerOrg) {
  ManagerOptions o;
  o.max_org_bytes = 100;
  start(o);
  auto a = create(alice_, 60);
  ASSERT_TRUE(a);
  EXPECT_EQ(create(bob_, 41).error(), UploadError::kOrgQuota);
  EXPECT_TRUE(create(alice_other_org_, 100));  // another org has its own quota
  auto b = create(bob_, 40);
  ASSERT_TRUE(b);
  EXPECT_EQ(append(alice_, a->id, 0, std::string(61, 'x')).error(), UploadError::kTooLarge);
  EXPECT_TRUE(create(bob_, 60));  // the failed upload gave its bytes back
}

TEST_F(ManagerTest, StorageErrorAtCreateIsReported) {
  start();
  fs::remove_all(dir_ / ".partial");
  std::ofstream(dir_ / ".partial") << "a file where the directory was";
  EXPECT_EQ(create(alice_, 10).error(), UploadError::kStorage);
  fs::remove(dir_ / ".partial");
  fs::create_directories(dir_ / ".partial");
  EXPECT_TRUE(create(alice_, 10));  // nothing was held by the failed attempt
}

TEST_F(ManagerTest, StorageErrorAtCommitFailsTheUploadAndRemovesItsData) {
  start();
  auto up = create(alice_, 4);
  ASSERT_TRUE(up);
  // A directory where the final file must go: rename(2) fails even for root.
  fs::create_directories(dir_ / up->id / "occupied");
  ASSERT_TRUE(append(alice_, up->id, 0, "ab"));
  EXPECT_EQ(append(alice_, up->id, 2, "cd").error(), UploadError::kStorage);
  EXPECT_FALSE(fs::exists(partial(up->id)));
  auto f = find(alice_, up->id);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->status, Status::kFailed);
  EXPECT_EQ(f->error, "storage_error");
  EXPECT_NE(f->error_message.find("commit"), std::string::npos);
  auto obs = observed();
  ASSERT_FALSE(obs.empty());
  EXPECT_EQ(obs.back().status, Status::kFailed);
}

// Local storage whose writers refuse to grow past `capacity` bytes with ENOSPC, as a full disk.
class FullDiskStorage final : public Storage {
 public:
  FullDiskStorage(std::unique_ptr<Storage> inner, std::uint64_t capacity)
      : inner_(std::move(inner)), capacity_(capacity) {}
  Result<std::unique_ptr<StorageWriter>> begin(std::string_view id) override {
    return wrap(inner_->begin(id));
  }
  Result<std::unique_ptr<StorageWriter>> open(std::string_view id) override {
    return wrap(inner_->open(id));
  }
  Result<void> save_state(std::string_view id, std::string_view state) override {
    return inner_->save_state(id, state);
  }
  Result<void> commit(std::string_view id, std::string_view name, std::string_view state) override {
    return inner_->commit(id, name, state);
  }
  void remove(std::string_view id) override { inner_->remove(id); }
  Result<void> remove_committed(std::string_view name) override {
    return inner_->remove_committed(name);
  }
  void forget_committed(std::string_view name) override { inner_->forget_committed(name); }
  std::vector<StoredUpload> load() override { return inner_->load(); }
  std::vector<std::string> temporaries() override { return inner_->temporaries(); }
  std::string describe(std::string_view name) const override { return inner_->describe(name); }

 private:
  Result<std::unique_ptr<StorageWriter>> wrap(Result<std::unique_ptr<StorageWriter>> w) {
    if (!w) return w.error();
    return std::unique_ptr<StorageWriter>(new Writer(std::move(*w), capacity_));
  }

  struct Writer final : StorageWriter {
    Writer(std::unique_ptr<StorageWriter> w, std::uint64_t cap)
        : inner(std::move(w)), capacity(cap) {
      if (auto n = inner->size()) used = *n;
    }
    Result<void> append(std::string_view bytes) override {
      if (used + bytes.size() > capacity)
        return ErrorCode(ENOSPC, boost::system::generic_category());
      used += bytes.size();
      return inner->append(bytes);
    }
    Result<void> truncate(std::uint64_t n) override {
      used = n;
      return inner->truncate(n);
    }
    Result<std::size_t> read(std::uint64_t offset, std::span<char> out) override {
      return inner->read(offset, out);
    }
    Result<std::uint64_t> size() override { return inner->size(); }
    Result<void> sync() override { return inner->sync(); }
    std::unique_ptr<StorageWriter> inner;
    std::uint64_t capacity;
    std::uint64_t used = 0;
  };
  std::unique_ptr<Storage> inner_;
  std::uint64_t capacity_;
};

TEST_F(ManagerTest, DiskFullMidUploadFailsItRemovesItsDataAndLeavesOthersAlone) {
  auto local = make_local_storage(dir_.string());
  ASSERT_TRUE(local);
  manager_ = make_manager({}, std::make_unique<FullDiskStorage>(std::move(*local), 6), {});
  auto up = create(alice_, 10);
  auto other = create(bob_, 3);
  ASSERT_TRUE(up && other);
  ASSERT_TRUE(append(alice_, up->id, 0, "1234"));
  EXPECT_EQ(append(alice_, up->id, 4, "5678").error(), UploadError::kStorage);
  EXPECT_FALSE(fs::exists(partial(up->id)));
  auto f = find(alice_, up->id);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->status, Status::kFailed);
  EXPECT_NE(f->error_message.find("No space left on device"), std::string::npos)
      << f->error_message;
  auto r = append(bob_, other->id, 0, "abc");  // another upload's disk budget is its own
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, Status::kComplete);
}

TEST_F(ManagerTest, ObserverSeesProgressEveryStepAndTheEnd) {
  ManagerOptions o;
  o.progress_bytes = 10;
  o.progress_interval = 1h;
  start(o);
  auto up = create(alice_, 30);
  ASSERT_TRUE(up);
  for (std::uint64_t off = 0; off < 30; off += 5) {
    ASSERT_TRUE(append(alice_, up->id, off, "12345"));
  }
  auto obs = observed();
  ASSERT_EQ(obs.size(), 4u);
  EXPECT_EQ(obs[0].received, 0u);  // created
  EXPECT_EQ(obs[1].received, 10u);
  EXPECT_EQ(obs[2].received, 20u);
  EXPECT_EQ(obs[3].received, 30u);
  EXPECT_EQ(obs[3].status, Status::kComplete);
}

TEST_F(ManagerTest, ExpirySweepRemovesUntouchedUploads) {
  ManagerOptions o;
  o.expiry = 1s;
  o.sweep_interval = 20ms;
  o.max_per_user = 1;
  start(o);
  auto up = create(alice_, 10);
  ASSERT_TRUE(up);
  ASSERT_TRUE(append(alice_, up->id, 0, "12345"));
  Result<UploadInfo> f = find(alice_, up->id);
  for (int i = 0; i < 500 && f && f->status == Status::kUploading; ++i) {
    std::this_thread::sleep_for(10ms);
    f = find(alice_, up->id);
  }
  ASSERT_TRUE(f);
  EXPECT_EQ(f->status, Status::kFailed);
  EXPECT_EQ(f->error, "expired");
  EXPECT_FALSE(fs::exists(partial(up->id)));
  EXPECT_EQ(append(alice_, up->id, 5, "x").error(), UploadError::kExpired);
  EXPECT_TRUE(create(alice_, 1));  // the limit was released
}

TEST_F(ManagerTest, RemoveDeletesPartialDataAndCompleteFiles) {
  start();
  auto a = create(alice_, 10);
  auto b = create(alice_, 1);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(append(alice_, a->id, 0, "123"));
  ASSERT_TRUE(append(alice_, b->id, 0, "x"));
  ASSERT_TRUE(remove(alice_, a->id));
  ASSERT_TRUE(remove(alice_, b->id));
  EXPECT_FALSE(fs::exists(partial(a->id)));
  EXPECT_FALSE(fs::exists(dir_ / b->id));
  EXPECT_EQ(find(alice_, a->id).error(), UploadError::kNotFound);
  EXPECT_EQ(find(alice_, b->id).error(), UploadError::kNotFound);
}

TEST_F(ManagerTest, AfterStopEveryCallAnswersShuttingDown) {
  start();
  auto up = create(alice_, 10);
  ASSERT_TRUE(up);
  ASSERT_TRUE(append(alice_, up->id, 0, "123"));
  manager_->stop();
  EXPECT_EQ(find(alice_, up->id).error(), UploadError::kShuttingDown);
  EXPECT_EQ(create(alice_, 1).error(), UploadError::kShuttingDown);
  EXPECT_TRUE(fs::exists(partial(up->id)));  // resumable by the next process
}

std::size_t open_fds() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

TEST_F(ManagerTest, RestartResumesFromTheLastCheckpointWithTheRightSha256) {
  start();
  const std::string data = "0123456789abcdefghijklmnopqrstuvwxyz";
  auto up = create(alice_, data.size(), sha_hex(data));
  ASSERT_TRUE(up);
  ASSERT_TRUE(append(alice_, up->id, 0, data.substr(0, 10)));
  auto cp = wait<UploadInfo>([&](auto cb) { manager_->checkpoint(alice_, up->id, cb); });
  ASSERT_TRUE(cp);
  EXPECT_EQ(cp->received, 10u);
  // Stored but never acknowledged: a restart must not claim these.
  ASSERT_TRUE(append(alice_, up->id, 10, data.substr(10, 5)));
  manager_.reset();
  EXPECT_EQ(fs::file_size(partial(up->id)), 15u);

  start();
  EXPECT_EQ(fs::file_size(partial(up->id)), 10u);  // cut back to the record
  auto f = find(alice_, up->id);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->received, 10u);
  EXPECT_EQ(f->size, data.size());
  EXPECT_EQ(f->filename, "invoice.pdf");
  EXPECT_EQ(f->status, Status::kUploading);
  EXPECT_EQ(find(bob_, up->id).error(), UploadError::kNotFound);  // the owner survived too
  EXPECT_EQ(append(alice_, up->id, 15, "x").error(), UploadError::kOffsetMismatch);
  auto r = append(alice_, up->id, 10, data.substr(10));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->status, Status::kComplete);
  EXPECT_EQ(r->sha256, sha_hex(data));  // the running hash was rebuilt from the file
  EXPECT_EQ(read_file(dir_ / up->id), data);

  // A complete upload survives a restart too, and terminating it frees its file.
  manager_.reset();
  start();
  f = find(alice_, up->id);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->status, Status::kComplete);
  EXPECT_EQ(f->sha256, sha_hex(data));
  ASSERT_TRUE(remove(alice_, up->id));
  EXPECT_FALSE(fs::exists(dir_ / up->id));
  EXPECT_FALSE(fs::exists(dir_ / (up->id + ".info")));
}

TEST_F(ManagerTest, LimitsCountReloadedUploads) {
  ManagerOptions o;
  o.max_per_user = 2;
  start(o);
  ASSERT_TRUE(create(alice_, 10));
  ASSERT_TRUE(create(alice_, 10));
  manager_.reset();
  start(o);
  EXPECT_EQ(create(alice_, 10).error(), UploadError::kTooManyUploads);
}

TEST_F(ManagerTest, ClaimMakesTheOffsetItGivesDurable) {
  start();
  auto up = create(alice_, 10);
  ASSERT_TRUE(up);
  ASSERT_TRUE(append(alice_, up->id, 0, "abcd"));
  auto c = claim(alice_, up->id);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->received, 4u);
  manager_.reset();
  start();
  auto f = find(alice_, up->id);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->received, 4u);
}

TEST_F(ManagerTest, IdleUploadsHoldNoFileDescriptor) {
  ManagerOptions o;
  o.max_per_user = 0;
  o.idle_close = 50ms;
  start(o);
  const std::size_t baseline = open_fds();
  std::vector<std::string> ids;
  for (int i = 0; i < 60; ++i) {
    auto up = create(alice_, 100);
    ASSERT_TRUE(up);
    ids.push_back(up->id);
  }
  EXPECT_LE(open_fds(), baseline + 2) << "created uploads keep no file open";
  for (const auto& id : ids) {
    ASSERT_TRUE(append(alice_, id, 0, "12345"));
    ASSERT_TRUE(wait<UploadInfo>([&](auto cb) { manager_->checkpoint(alice_, id, cb); }));
  }
  EXPECT_LE(open_fds(), baseline + 2) << "a checkpoint closes the file";
  // Bytes without a checkpoint (a PATCH still streaming) keep the file open until it idles.
  for (const auto& id : ids) ASSERT_TRUE(append(alice_, id, 5, "678"));
  for (int i = 0; i < 500 && open_fds() > baseline + 2; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_LE(open_fds(), baseline + 2) << "and are closed once idle";
  auto r = append(alice_, ids[0], 8, "9");  // reopened on demand
  ASSERT_TRUE(r);
  EXPECT_EQ(r->received, 9u);
}

TEST_F(ManagerTest, SweepRemovesOrphanedFilesPeriodically) {
  fs::create_directories(dir_ / ".partial");
  std::ofstream(dir_ / ".partial" / "0badc0de") << "left by a crash";
  ManagerOptions o;
  o.sweep_interval = 20ms;
  start(o);
  EXPECT_FALSE(fs::exists(dir_ / ".partial" / "0badc0de")) << "swept at start";
  auto up = create(alice_, 10);
  ASSERT_TRUE(up);
  std::ofstream(dir_ / ".partial" / "5eed") << "appeared later";
  std::ofstream(dir_ / ".partial" / "5eed.info.tmp") << "half a record";
  for (int i = 0; i < 500 && fs::exists(dir_ / ".partial" / "5eed"); ++i) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_FALSE(fs::exists(dir_ / ".partial" / "5eed"));
  EXPECT_FALSE(fs::exists(dir_ / ".partial" / "5eed.info.tmp"));
  EXPECT_TRUE(fs::exists(partial(up->id))) << "a live upload is no orphan";
}

TEST_F(ManagerTest, UploadsThatExpiredWhileDownAreRemovedAtStart) {
  ManagerOptions o;
  o.expiry = 1s;
  start(o);
  auto up = create(alice_, 10);
  ASSERT_TRUE(up);
  manager_.reset();
  std::this_thread::sleep_for(1100ms);
  start(o);
  EXPECT_EQ(find(alice_, up->id).error(), UploadError::kNotFound);
  EXPECT_FALSE(fs::exists(partial(up->id)));
  EXPECT_FALSE(fs::exists(dir_ / ".partial" / (up->id + ".info")));
}

TEST_F(ManagerTest, AnUnreadableRecordIsDroppedWithItsData) {
  start();
  auto up = create(alice_, 10);
  ASSERT_TRUE(up);
  manager_.reset();
  std::ofstream(dir_ / ".partial" / (up->id + ".info"), std::ios::trunc) << "garbage";
  start();
  EXPECT_EQ(find(alice_, up->id).error(), UploadError::kNotFound);
  EXPECT_FALSE(fs::exists(partial(up->id)));
}

}  // namespace
}  // namespace sg::upload
