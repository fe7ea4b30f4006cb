// Block keys: SHA-256 against FIPS 180-4 vectors, framing of roots, and chaining.
#include <string>
#include <vector>

#include "supernode/scheduler/block_hash.h"

#include <CppUTest/TestHarness.h>

using sn::scheduler::BlockHash;
using sn::scheduler::block_hash_next;
using sn::scheduler::block_hash_root;

namespace {

std::string sha_hex(const std::string& msg) {
  uint8_t d[32];
  sn::scheduler::sha256({reinterpret_cast<const uint8_t*>(msg.data()), msg.size()}, d);
  static const char kHex[] = "0123456789abcdef";
  std::string s;
  for (uint8_t b : d) {
    s += kHex[b >> 4];
    s += kHex[b & 15];
  }
  return s;
}

}  // namespace

TEST_GROUP(BlockHash){};

TEST(BlockHash, Sha256MatchesFipsVectors) {
  STRCMP_EQUAL("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", sha_hex("").c_str());
  STRCMP_EQUAL("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", sha_hex("abc").c_str());
  // 56 bytes: the padding spills into a second block.
  STRCMP_EQUAL("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
               sha_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq").c_str());
  STRCMP_EQUAL("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
               sha_hex(std::string(1000000, 'a')).c_str());
}

TEST(BlockHash, RootsAreLengthFramed) {
  CHECK(block_hash_root("ab", "c") != block_hash_root("a", "bc"));
  CHECK(block_hash_root("model", "") != block_hash_root("model", std::string(1, '\0')));
  CHECK(block_hash_root("m1", "tenant") != block_hash_root("m2", "tenant"));
  CHECK(block_hash_root("m", "tenant") == block_hash_root("m", "tenant"));
  STRCMP_EQUAL(block_hash_root("m", "t").to_string().c_str(), block_hash_root("m", "t").to_string().c_str());
  LONGS_EQUAL(32, block_hash_root("m", "t").to_string().size());
}

TEST(BlockHash, ChainCommitsToParentTokensAndExtraKeys) {
  BlockHash root = block_hash_root("m", "salt");
  std::vector<int32_t> a = {1, 2, 3, 4};
  std::vector<int32_t> b = {1, 2, 3, 5};
  BlockHash ha = block_hash_next(root, a);
  CHECK(ha == block_hash_next(root, a));
  CHECK(ha != block_hash_next(root, b));
  CHECK(ha != block_hash_next(block_hash_root("m", "other"), a));
  std::vector<uint64_t> lora = {7};
  CHECK(ha != block_hash_next(root, a, lora));
  // The same block after different parents is a different block.
  CHECK(block_hash_next(ha, a) != block_hash_next(block_hash_next(root, b), a));
  // Token framing: [1,2] + [3] is not [1] + [2,3] at the block level either.
  std::vector<int32_t> one = {1};
  std::vector<int32_t> twothree = {2, 3};
  std::vector<int32_t> onetwo = {1, 2};
  std::vector<int32_t> three = {3};
  CHECK(block_hash_next(block_hash_next(root, onetwo), three) != block_hash_next(block_hash_next(root, one), twothree));
}
