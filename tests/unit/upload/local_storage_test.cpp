#include "upload/upload.hpp"

#include <gtest/gtest.h>

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
  auto storage = make_local_storage(dir.path().string(), std::chrono::hours(1));
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
  ASSERT_TRUE((*storage)->commit("abc", "abc"));
  EXPECT_FALSE(fs::exists(dir.path() / ".partial" / "abc"));
  EXPECT_EQ(read_file(dir.path() / "abc"), "hello!");
}

TEST(LocalStorage, RemoveDeletesThePartialFile) {
  TempDir dir;
  auto storage = make_local_storage(dir.path().string(), std::chrono::hours(1));
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
  auto storage = make_local_storage((dir.path() / "file").string(), std::chrono::hours(1));
  EXPECT_FALSE(storage);
}

TEST(LocalStorage, BeginFailsWhenThePartialDirWasReplacedByAFile) {
  TempDir dir;
  auto storage = make_local_storage(dir.path().string(), std::chrono::hours(1));
  ASSERT_TRUE(storage);
  fs::remove_all(dir.path() / ".partial");
  std::ofstream(dir.path() / ".partial") << "not a directory";
  auto writer = (*storage)->begin("y");
  ASSERT_FALSE(writer);
  EXPECT_EQ(writer.error().value(), ENOTDIR);
}

TEST(LocalStorage, CommitFailsWhenTheTargetIsADirectory) {
  TempDir dir;
  auto storage = make_local_storage(dir.path().string(), std::chrono::hours(1));
  ASSERT_TRUE(storage);
  auto writer = (*storage)->begin("z");
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->append("data"));
  writer->reset();
  fs::create_directories(dir.path() / "z" / "occupied");
  EXPECT_FALSE((*storage)->commit("z", "z"));
}

TEST(LocalStorage, RemovesStalePartialFilesAtStart) {
  TempDir dir;
  fs::create_directories(dir.path() / ".partial");
  std::ofstream(dir.path() / ".partial" / "old") << "x";
  std::ofstream(dir.path() / ".partial" / "new") << "x";
  fs::last_write_time(dir.path() / ".partial" / "old",
                      fs::file_time_type::clock::now() - std::chrono::hours(2));
  auto storage = make_local_storage(dir.path().string(), std::chrono::hours(1));
  ASSERT_TRUE(storage);
  EXPECT_FALSE(fs::exists(dir.path() / ".partial" / "old"));
  EXPECT_TRUE(fs::exists(dir.path() / ".partial" / "new"));
}

}  // namespace
}  // namespace sg::upload
