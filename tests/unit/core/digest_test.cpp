#include "core/core.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <utility>

namespace sg::core {
namespace {

std::string hex(std::string_view raw) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (const char c : raw) {
    out.push_back(kDigits[static_cast<unsigned char>(c) >> 4]);
    out.push_back(kDigits[static_cast<unsigned char>(c) & 0xf]);
  }
  return out;
}

TEST(Digest, MatchesKnownVectors) {
  Digest sha256;
  sha256.update("abc");
  EXPECT_EQ(hex(sha256.finish()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Digest sha1(DigestAlgorithm::kSha1);
  sha1.update("abc");
  EXPECT_EQ(hex(sha1.finish()), "a9993e364706816aba3e25717850c26c9cd0d89d");
  Digest md5(DigestAlgorithm::kMd5);
  md5.update("abc");
  EXPECT_EQ(hex(md5.finish()), "900150983cd24fb0d6963f7d28e17f72");
}

TEST(Digest, IsTheSameFedInPieces) {
  Digest whole;
  whole.update("hello, world");
  Digest pieces;
  pieces.update("hello");
  pieces.update("");
  pieces.update(", world");
  EXPECT_EQ(pieces.finish(), whole.finish());
}

TEST(Digest, StartsOverAfterFinishAndReset) {
  Digest d;
  d.update("abc");
  (void)d.finish();
  EXPECT_EQ(hex(d.finish()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  d.update("junk");
  d.reset();
  d.update("abc");
  EXPECT_EQ(hex(d.finish()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Digest, KeepsItsAlgorithmAndStateWhenMoved) {
  Digest d(DigestAlgorithm::kSha1);
  d.update("a");
  Digest moved(std::move(d));
  moved.update("bc");
  EXPECT_EQ(hex(moved.finish()), "a9993e364706816aba3e25717850c26c9cd0d89d");
  Digest assigned;
  assigned = std::move(moved);
  assigned.update("abc");
  EXPECT_EQ(hex(assigned.finish()), "a9993e364706816aba3e25717850c26c9cd0d89d");
}

TEST(Digest, SizesAreThoseOfTheAlgorithms) {
  EXPECT_EQ(digest_size(DigestAlgorithm::kSha1), 20u);
  EXPECT_EQ(digest_size(DigestAlgorithm::kMd5), 16u);
  EXPECT_EQ(digest_size(DigestAlgorithm::kSha256), 32u);
  for (auto a : {DigestAlgorithm::kSha1, DigestAlgorithm::kMd5, DigestAlgorithm::kSha256}) {
    EXPECT_EQ(Digest(a).finish().size(), digest_size(a));
  }
}

}  // namespace
}  // namespace sg::core
