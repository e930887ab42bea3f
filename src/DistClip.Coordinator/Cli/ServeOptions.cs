using System.Globalization;
using System.Net;
using DistClip.Control;
using DistClip.Model;

namespace DistClip.Coordinator.Cli;

/// <summary>Where <c>coordinator serve</c> listens and which secret it expects.</summary>
internal sealed record ServeOptions(IPAddress Bind, int Port, string? AdvertiseHost, string? Secret)
{
    public static ServeOptions Parse(IReadOnlyList<string> pairs)
    {
        var bind = IPAddress.Any;
        int port = 29400;
        string? advertise = null;
        string? secret = RunSecret.Load(null);
        for (int i = 0; i + 1 < pairs.Count; i += 2)
        {
            string value = pairs[i + 1];
            switch (pairs[i])
            {
                case "bind":
                    bind = IPAddress.TryParse(value, out var a) ? a : throw new ConfigException("bind", $"'{value}' is not an IP address");
                    break;
                case "port":
                    port = int.TryParse(value, CultureInfo.InvariantCulture, out int p) && p is >= 0 and <= 65535 ? p : throw new ConfigException("port", $"'{value}' is not a port");
                    break;
                case "advertise-host":
                    advertise = value;
                    break;
                case "secret-file":
                    secret = File.Exists(value) ? RunSecret.Load(value) : throw new ConfigException("secret-file", $"{value} does not exist");
                    break;
                default:
                    throw new ConfigException(pairs[i], "unknown option; run 'coordinator serve --help'");
            }
        }

        return new ServeOptions(bind, port, advertise, secret);
    }
}
