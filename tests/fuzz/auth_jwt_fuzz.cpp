// Feeds arbitrary bytes as a token to an HS256 verifier and an ES256 verifier (and, since the
// bytes are at hand, to the Authorization and Origin parsers). Whatever the input, nothing may
// crash, and an accepted token must yield a Principal within the documented limits.
#include "auth/auth.hpp"

#include <cstdint>
#include <cstdlib>

namespace {

using sg::auth::OriginPolicy;
using sg::auth::TokenVerifier;
using sg::auth::VerifierOptions;

// The seed corpus holds tokens signed with this secret and with the private half of this key,
// so the fuzzer starts past the signature check and explores claim parsing.
constexpr const char* kSecret = "fuzz-secret-for-streamgate-auth-0001";
constexpr const char* kEcPublicKey = R"(-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAElmLbE+bfXekF+HvqoWCooAuYHZEV
sS4KS39HSq5cVy1miYD7zAUDge963RqUKf50Oox8Q/G14uWiCXdDl5V2hg==
-----END PUBLIC KEY-----
)";
const auto kNow = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));

std::shared_ptr<const TokenVerifier> make(VerifierOptions options) {
  auto verifier = TokenVerifier::create(options);
  if (!verifier) std::abort();  // the harness itself is broken
  return *verifier;
}

void check(const TokenVerifier& verifier, std::string_view token) {
  const auto principal = verifier.verify(token, kNow);
  if (!principal) return;
  if (principal->user.empty() || principal->user.size() > 256 || principal->org.empty() ||
      principal->org.size() > 128 || principal->expiry <= kNow - std::chrono::seconds(30)) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto hs256 = make(VerifierOptions{kSecret, {}, std::chrono::seconds(30)});
  static const auto es256 = make(VerifierOptions{{}, kEcPublicKey, std::chrono::seconds(30)});
  static const OriginPolicy origins({"https://app.example.com", "https://*.example.com", "null"});

  const std::string_view input(reinterpret_cast<const char*>(data), size);
  check(*hs256, input);
  check(*es256, input);
  const std::string_view bearer = sg::auth::bearer_token(input);
  if (bearer.size() > input.size()) std::abort();
  check(*hs256, bearer);
  (void)origins.allows(input);
  return 0;
}
