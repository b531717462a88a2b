"""Thin gRPC servicers: proto in, core call, proto out."""
