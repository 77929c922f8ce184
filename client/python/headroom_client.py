#!/usr/bin/env python3
"""Example Python client of a Headroom server (the headroom.v1 gRPC API).

    headroom_client.py generate --prompt "Once upon a time" --max_tokens 64
    headroom_client.py info
    headroom_client.py health          # exit status 0 iff SERVING

--server HOST:PORT picks the server (default 127.0.0.1:50051). The stubs are
generated at start-up from ../../proto into a temporary directory, with protoc
and grpc_python_plugin (Debian: protobuf-compiler, protobuf-compiler-grpc) or
else grpcio-tools >= 1.32 (Debian 12's python3-grpc-tools 1.14 bundles a protoc
too old for proto3 `optional`). Runtime: python3-grpcio, python3-protobuf.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

PROTO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto")


def generate_stubs(out_dir):
    """Compiles the protos into out_dir and puts it on sys.path."""
    # health.proto goes in at the top level: generated under grpc/health/v1/,
    # its module would be hidden by the installed `grpc` package.
    src = os.path.join(out_dir, "src")
    os.makedirs(src)
    shutil.copy(os.path.join(PROTO_DIR, "grpc", "health", "v1", "health.proto"), src)
    args = ["-I" + PROTO_DIR, "-I" + src, "--python_out=" + out_dir, "--grpc_python_out=" + out_dir,
            "headroom/v1/headroom.proto", "health.proto"]
    plugin = shutil.which("grpc_python_plugin")
    if shutil.which("protoc") and plugin:
        subprocess.run(["protoc", "--plugin=protoc-gen-grpc_python=" + plugin] + args, check=True)
    else:
        from grpc_tools import protoc
        if protoc.main(["protoc"] + args) != 0:
            sys.exit("error: cannot compile the protos (see above)")
    sys.path.insert(0, out_dir)


def generate(stub, pb, args):
    request = pb.GenerateRequest(text=args.prompt, stop=pb.StopCriteria(max_tokens=args.max_tokens))
    for response in stub.Generate(request, timeout=args.timeout_s):
        event = response.WhichOneof("event")
        if event == "delta":
            sys.stdout.write(response.delta.text)
            sys.stdout.flush()
        elif event == "finished":
            f, u = response.finished, response.finished.usage
            print(f"\n[finish: {pb.FinishReason.Name(f.reason)}; prompt {u.prompt_tokens} tokens "
                  f"({u.cached_tokens} cached), generated {u.generated_tokens} tokens]")
    return 0


def main():
    parser = argparse.ArgumentParser(description="Example client of a Headroom server.")
    parser.add_argument("command", choices=["generate", "info", "health"])
    parser.add_argument("--server", default="127.0.0.1:50051", help="HOST:PORT of the server")
    parser.add_argument("--prompt", default="Once upon a time", help="generate: the prompt text")
    parser.add_argument("--max_tokens", type=int, default=64, help="generate: tokens at most")
    parser.add_argument("--timeout_s", type=float, default=None, help="deadline (health: 3 s)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        generate_stubs(tmp)
        import grpc
        import health_pb2
        import health_pb2_grpc
        from headroom.v1 import headroom_pb2 as pb
        from headroom.v1 import headroom_pb2_grpc as pb_grpc

    with grpc.insecure_channel(args.server) as channel:
        stub = pb_grpc.HeadroomStub(channel)
        try:
            if args.command == "generate":
                return generate(stub, pb, args)
            if args.command == "info":
                print(stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=args.timeout_s), end="")
                return 0
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=args.timeout_s or 3.0)
            print(health_pb2.HealthCheckResponse.ServingStatus.Name(health.status))
            return 0 if health.status == health_pb2.HealthCheckResponse.SERVING else 1
        except grpc.RpcError as e:
            print(f"error: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
