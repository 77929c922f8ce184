// --backend and --workers resolution (server/engine/backend_choice.h): every
// rule, with the machine's facts given, so no GPU is needed.
#include "server/engine/backend_choice.h"

#include "gtest/gtest.h"

namespace hr {
namespace {

BackendFacts Gpu(int devices) {
  BackendFacts f;
  f.cuda_compiled = true;
  f.cuda_devices = devices;
  return f;
}

TEST(BackendChoiceTest, AutoTakesCudaOnlyWhenEveryFactAllowsIt) {
  EXPECT_EQ(*ChooseBackend("auto", Gpu(1)), Backend::kCuda);
  EXPECT_EQ(*ChooseBackend("auto", Gpu(0)), Backend::kCpu);
  BackendFacts not_built = Gpu(2);
  not_built.cuda_compiled = false;
  EXPECT_EQ(*ChooseBackend("auto", not_built), Backend::kCpu);
  BackendFacts seqpe = Gpu(1);
  seqpe.llama = false;
  EXPECT_EQ(*ChooseBackend("auto", seqpe), Backend::kCpu);
  BackendFacts head = Gpu(1);
  head.cuda_supports = absl::UnimplementedError("head_dim 96");
  EXPECT_EQ(*ChooseBackend("auto", head), Backend::kCpu);
}

TEST(BackendChoiceTest, CpuIsAlwaysTheCpu) {
  EXPECT_EQ(*ChooseBackend("cpu", Gpu(4)), Backend::kCpu);
  EXPECT_EQ(*ChooseBackend("cpu", BackendFacts{}), Backend::kCpu);
}

TEST(BackendChoiceTest, CudaNamesWhatRulesItOut) {
  EXPECT_EQ(*ChooseBackend("cuda", Gpu(1)), Backend::kCuda);
  struct Case {
    BackendFacts facts;
    const char* says;
  };
  BackendFacts not_built = Gpu(1);
  not_built.cuda_compiled = false;
  BackendFacts seqpe = Gpu(1);
  seqpe.llama = false;
  BackendFacts head = Gpu(1);
  head.cuda_supports = absl::UnimplementedError("head_dim 96");
  for (const Case& c : {Case{not_built, "no CUDA backend"}, Case{Gpu(0), "no CUDA device"},
                        Case{seqpe, "SeqPE"}, Case{head, "head_dim 96"}}) {
    const absl::StatusOr<Backend> b = ChooseBackend("cuda", c.facts);
    ASSERT_FALSE(b.ok()) << c.says;
    EXPECT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(b.status().message().find(c.says), std::string::npos) << b.status();
  }
}

TEST(BackendChoiceTest, UnknownFlagIsInvalid) {
  const absl::StatusOr<Backend> b = ChooseBackend("gpu", Gpu(1));
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(b.status().message().find("'gpu'"), std::string::npos);
}

TEST(BackendChoiceTest, WorkersAreOnePerGpuOnCuda) {
  EXPECT_EQ(*ChooseWorkers(Backend::kCpu, 0, 8), 1);
  EXPECT_EQ(*ChooseWorkers(Backend::kCpu, 3, 0), 3);
  EXPECT_EQ(*ChooseWorkers(Backend::kCuda, 0, 4), 4);
  EXPECT_EQ(*ChooseWorkers(Backend::kCuda, 2, 4), 2);
  const absl::StatusOr<int> too_many = ChooseWorkers(Backend::kCuda, 3, 2);
  ASSERT_FALSE(too_many.ok());
  EXPECT_EQ(too_many.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(ChooseWorkers(Backend::kCpu, -1, 0).ok());
  EXPECT_STREQ(BackendName(Backend::kCuda), "cuda");
  EXPECT_STREQ(BackendName(Backend::kCpu), "cpu");
}

}  // namespace
}  // namespace hr
