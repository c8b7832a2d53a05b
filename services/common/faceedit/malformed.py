"""Request bytes that are not a valid protobuf message get INVALID_ARGUMENT, not grpc.aio's UNKNOWN.

grpc.aio decodes a request with the handler's request_deserializer before the servicer runs; when that raises
(google.protobuf.message.DecodeError on truncated or corrupt bytes) the caller sees UNKNOWN "Unexpected <class
'google.protobuf.message.DecodeError'>: ...", an undocumented status that also names server internals. This
interceptor takes decoding over: the handler receives raw bytes, decodes them with the original deserializer,
and refuses undecodable ones with INVALID_ARGUMENT naming the expected message type.

Put it after the authentication interceptor: an unauthenticated caller's bytes are never decoded at all.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError


def _message_name(method: str) -> str:
    """ "/faceedit.v1.FaceEditor/EditFace" -> "the EditFace request"."""
    return f"the {method.rsplit('/', 1)[-1]} request"


def _decoder(
    deserialize: Callable[[bytes], Any], method: str
) -> Callable[[bytes, grpc.aio.ServicerContext], Awaitable[Any]]:
    async def decode(data: bytes, context: grpc.aio.ServicerContext) -> Any:
        try:
            return deserialize(data)
        except (DecodeError, ValueError, TypeError):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{_message_name(method)} is not a valid protobuf message ({len(data)} bytes); "
                "send it with a client generated from faceedit's .proto files",
            )

    return decode


def _unary_request(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    decode = _decoder(handler.request_deserializer, method)
    if not handler.response_streaming:
        behavior = handler.unary_unary

        async def unary(data: bytes, context: grpc.aio.ServicerContext) -> Any:
            result = behavior(await decode(data, context), context)
            return await result if inspect.isawaitable(result) else result

        return grpc.unary_unary_rpc_method_handler(unary, response_serializer=handler.response_serializer)
    behavior = handler.unary_stream
    if inspect.isasyncgenfunction(behavior):

        async def stream(data: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async for response in behavior(await decode(data, context), context):
                yield response

        return grpc.unary_stream_rpc_method_handler(stream, response_serializer=handler.response_serializer)

    async def writer(data: bytes, context: grpc.aio.ServicerContext) -> None:
        # A coroutine servicer streams with context.write and returns nothing.
        result = behavior(await decode(data, context), context)
        if inspect.isawaitable(result):
            await result

    return grpc.unary_stream_rpc_method_handler(writer, response_serializer=handler.response_serializer)


class MalformedRequestInterceptor(grpc.aio.ServerInterceptor):
    """INVALID_ARGUMENT for undecodable request bytes on every unary-request method (faceedit has no
    client-streaming ones; those are passed through unchanged)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming or handler.request_deserializer is None:
            return handler
        return _unary_request(handler, handler_call_details.method)
