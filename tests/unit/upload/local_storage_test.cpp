#include "upload/upload.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace sg::upload {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("sg-upload-" + core::random_hex(8))) {
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(LocalStorage, WritesTruncatesReadsAndCommitsIntoPlace) {
  TempDir dir;
  auto storage = make_local_storage(dir.path().string());
  ASSERT_TRUE(storage) << storage.error().message();
  auto writer = (*storage)->begin("abc");
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->append("hello "));
  ASSERT_TRUE((*writer)->append("world"));
  ASSERT_TRUE((*writer)->truncate(5));
  ASSERT_TRUE((*writer)->append("!"));
  std::array<char, 16> buf{};
  auto n = (*writer)->read(0, buf);
  ASSERT_TRUE(n);
  EXPECT_EQ(std::string_view(buf.data(), *n), "hello!");
  ASSERT_TRUE((*writer)->sync());
  EXPECT_TRUE(fs::exists(dir.path() / ".partial" / "abc"));
  writer->reset();
  ASSERT_TRUE((*storage)->save_state("abc", "unfinished"));
  EXPECT_EQ(read_file(dir.path() / ".partial" / "abc.info"), "unfinished");
  ASSERT_TRUE((*storage)->commit("abc", "abc", "complete"));
  EXPECT_FALSE(fs::exists(dir.path() / ".partial" / "abc"));
  EXPECT_FALSE(fs::exists(dir.path() / ".partial" / "abc.info"));
  EXPECT_EQ(read_file(dir.path() / "abc"), "hello!");
  EXPECT_EQ(read_file(dir.path() / "abc.info"), "complete");
}

TEST(LocalStorage, RemoveDeletesThePartialFile) {
  TempDir dir;
  auto storage = make_local_storage(dir.path().string());
  ASSERT_TRUE(storage);
  auto writer = (*storage)->begin("x1");
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->append("data"));
  writer->reset();
  (*storage)->remove("x1");
  EXPECT_FALSE(fs::exists(dir.path() / ".partial" / "x1"));
}

TEST(LocalStorage, FailsWhenTheUploadDirIsAFile) {
  TempDir dir;
  std::ofstream(dir.path() / "file") << "x";
  auto storage = make_local_storage((dir.path() / "file").string());
  EXPECT_FALSE(storage);
}

TEST(LocalStorage, BeginFailsWhenThePartialDirWasReplacedByAFile) {
  TempDir dir;
  auto storage = make_local_storage(dir.path().string());
  ASSERT_TRUE(storage);
  fs::remove_all(dir.path() / ".partial");
  std::ofstream(dir.path() / ".partial") << "not a directory";
  auto writer = (*storage)->begin("y");
  ASSERT_FALSE(writer);
  EXPECT_EQ(writer.error().value(), ENOTDIR);
}

TEST(LocalStorage, CommitFailsWhenTheTargetIsADirectory) {
  TempDir dir;
  auto storage = make_local_storage(dir.path().string());
  ASSERT_TRUE(storage);
  auto writer = (*storage)->begin("z");
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->append("data"));
  writer->reset();
  fs::create_directories(dir.path() / "z" / "occupied");
  EXPECT_FALSE((*storage)->commit("z", "z", "complete"));
  EXPECT_FALSE(fs::exists(dir.path() / "z.info"));  // no record of a commit that failed
}

TEST(LocalStorage, RemoveDeletesDataAndRecord) {
  TempDir dir;
  auto storage = make_local_storage(dir.path().string());
  ASSERT_TRUE(storage);
  ASSERT_TRUE((*storage)->begin("r1"));
  ASSERT_TRUE((*storage)->save_state("r1", "state"));
  (*storage)->remove("r1");
  EXPECT_FALSE(fs::exists(dir.path() / ".partial" / "r1"));
  EXPECT_FALSE(fs::exists(dir.path() / ".partial" / "r1.info"));
}

TEST(LocalStorage, OpenAppendsToTheExistingDataAndFailsWithoutIt) {
  TempDir dir;
  auto storage = make_local_storage(dir.path().string());
  ASSERT_TRUE(storage);
  {
    auto w = (*storage)->begin("o1");
    ASSERT_TRUE(w);
    ASSERT_TRUE((*w)->append("abc"));
  }
  auto w = (*storage)->open("o1");
  ASSERT_TRUE(w);
  ASSERT_TRUE((*w)->append("def"));
  auto n = (*w)->size();
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 6u);
  EXPECT_EQ(read_file(dir.path() / ".partial" / "o1"), "abcdef");
  auto missing = (*storage)->open("nope");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().value(), ENOENT);
}

TEST(LocalStorage, LoadFindsRecordsAndFinishesAnInterruptedCommit) {
  TempDir dir;
  const fs::path partial = dir.path() / ".partial";
  fs::create_directories(partial);
  std::ofstream(partial / "u1") << "data";
  std::ofstream(partial / "u1.info") << "unfinished";
  // A crash after the complete record was written, before the rename.
  std::ofstream(partial / "c1") << "done";
  std::ofstream(partial / "c1.info") << "old";
  std::ofstream(dir.path() / "c1.info") << "complete";
  // A record whose write was cut short, and a complete record whose file is gone.
  std::ofstream(partial / "t1.info.tmp") << "half";
  std::ofstream(dir.path() / "gone.info") << "complete";
  auto storage = make_local_storage(dir.path().string());
  ASSERT_TRUE(storage);
  auto loaded = (*storage)->load();
  std::sort(loaded.begin(), loaded.end(),
            [](const StoredUpload& a, const StoredUpload& b) { return a.id < b.id; });
  ASSERT_EQ(loaded.size(), 2u);
  EXPECT_EQ(loaded[0].id, "c1");
  EXPECT_TRUE(loaded[0].committed);
  EXPECT_EQ(loaded[0].state, "complete");
  EXPECT_EQ(loaded[1].id, "u1");
  EXPECT_FALSE(loaded[1].committed);
  EXPECT_EQ(loaded[1].state, "unfinished");
  EXPECT_EQ(read_file(dir.path() / "c1"), "done");
  EXPECT_FALSE(fs::exists(partial / "c1"));
  EXPECT_FALSE(fs::exists(partial / "c1.info"));
  EXPECT_FALSE(fs::exists(partial / "t1.info.tmp"));
  EXPECT_FALSE(fs::exists(dir.path() / "gone.info"));
}

TEST(LocalStorage, TemporariesNameEveryIdInThePartialDir) {
  TempDir dir;
  const fs::path partial = dir.path() / ".partial";
  fs::create_directories(partial);
  std::ofstream(partial / "a") << "x";
  std::ofstream(partial / "a.info") << "x";
  std::ofstream(partial / "b.info.tmp") << "x";
  auto storage = make_local_storage(dir.path().string());
  ASSERT_TRUE(storage);
  auto ids = (*storage)->temporaries();
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::string>{"a", "b"}));
}

TEST(LocalStorage, RemoveCommittedDeletesTheFileAndForgetKeepsIt) {
  TempDir dir;
  auto storage = make_local_storage(dir.path().string());
  ASSERT_TRUE(storage);
  for (std::string id : {"k1", "k2"}) {
    ASSERT_TRUE((*storage)->begin(id));
    ASSERT_TRUE((*storage)->commit(id, id, "complete"));
  }
  ASSERT_TRUE((*storage)->remove_committed("k1"));
  EXPECT_FALSE(fs::exists(dir.path() / "k1"));
  EXPECT_FALSE(fs::exists(dir.path() / "k1.info"));
  (*storage)->forget_committed("k2");
  EXPECT_TRUE(fs::exists(dir.path() / "k2"));
  EXPECT_FALSE(fs::exists(dir.path() / "k2.info"));
}

}  // namespace
}  // namespace sg::upload
