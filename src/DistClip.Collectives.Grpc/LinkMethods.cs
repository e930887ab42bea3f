using DistClip.Collectives.Grpc.V1;
using DistClip.Collectives.Transport;
using Grpc.Core;

namespace DistClip.Collectives.Grpc;

/// <summary>
/// <c>CollectiveLink.Open</c> with the hand-written frame marshaller. Each side declares only the
/// direction it uses: the client serializes <see cref="OutgoingFrame"/>s, the server parses
/// <see cref="RingFrame"/>s; both are the proto's <c>CollectiveFrame</c> on the wire.
/// </summary>
internal static class LinkMethods
{
    private static readonly string ServiceName = CollectiveLink.Descriptor.FullName;

    private static readonly Marshaller<LinkEvent> Events = Marshallers.Create(
        (LinkEvent e, SerializationContext c) =>
        {
            c.Complete(Google.Protobuf.MessageExtensions.ToByteArray(e));
        },
        c => LinkEvent.Parser.ParseFrom(c.PayloadAsReadOnlySequence()));

    public static readonly Method<OutgoingFrame, LinkEvent> ClientOpen = new(
        MethodType.DuplexStreaming, ServiceName, "Open",
        Marshallers.Create<OutgoingFrame>(FrameMarshaller.Serialize, _ => throw new NotSupportedException("Clients only send frames.")),
        Events);

    public static readonly Method<RingFrame, LinkEvent> ServerOpen = new(
        MethodType.DuplexStreaming, ServiceName, "Open",
        Marshallers.Create<RingFrame>((_, _) => throw new NotSupportedException("Servers only receive frames."), FrameMarshaller.Deserialize),
        Events);
}
