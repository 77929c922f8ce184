// Test helper: one headroom-server for a whole test suite (start it in
// SetUpTestSuite, destroy it in TearDownTestSuite), with a gRPC channel and
// Headroom stub to it, and the same model loaded in the test process for
// reference outputs (LoadServedModel).
//
// Thread-safety: as the members'. Header-only; link hr_proto, hr_engine and
// hr_server_process.
#ifndef HEADROOM_TESTS_UTIL_SUITE_SERVER_H_
#define HEADROOM_TESTS_UTIL_SUITE_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "headroom/v1/headroom.grpc.pb.h"
#include "server/engine/served_model.h"
#include "tests/util/server_process.h"

namespace hr::testing {

struct SuiteServer {
  std::unique_ptr<ServerProcess> server;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<headroom::v1::Headroom::Stub> stub;
  std::unique_ptr<LoadedServedModel> model;
  std::string error;  // why the server or the model is missing

  // Starts `argv` (argv[0]: the binary) and loads `model_path` here;
  // failures are kept in `error` (check ok() in SetUp).
  static std::unique_ptr<SuiteServer> Start(std::vector<std::string> argv,
                                            const std::string& model_path) {
    auto s = std::make_unique<SuiteServer>();
    auto loaded = LoadServedModel(model_path);
    if (!loaded.ok()) {
      s->error = "cannot load " + model_path + ": " + loaded.status().ToString();
      return s;
    }
    s->model = std::make_unique<LoadedServedModel>(std::move(*loaded));
    auto server = ServerProcess::Start({.argv = std::move(argv)});
    if (!server.ok()) {
      s->error = server.status().ToString();
      return s;
    }
    s->server = std::move(*server);
    s->channel = grpc::CreateChannel(s->server->grpc_address(), grpc::InsecureChannelCredentials());
    s->stub = headroom::v1::Headroom::NewStub(s->channel);
    return s;
  }

  bool ok() const { return server != nullptr && model != nullptr; }

  // Stops the server (SIGTERM drain) and expects a clean exit.
  ~SuiteServer() {
    stub.reset();
    channel.reset();
    if (server != nullptr) {
      auto code = server->Stop();
      EXPECT_TRUE(code.ok() && *code == 0)
          << (code.ok() ? "exit code " + std::to_string(*code) : code.status().ToString());
    }
  }
};

}  // namespace hr::testing

#endif  // HEADROOM_TESTS_UTIL_SUITE_SERVER_H_
