"""Generated gRPC/protobuf modules (committed; see externalscaler.proto for how to regenerate)."""
