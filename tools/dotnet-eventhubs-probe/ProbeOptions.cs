namespace DotnetEventHubsProbe;

/// <summary>The probe's command line.</summary>
internal sealed record ProbeOptions(
    string Command,
    string Hub,
    string ConsumerGroup,
    string? PartitionKey,
    string? PartitionId,
    int Count,
    string Tag,
    int Expect,
    string From,
    int TimeoutMs,
    int MaxWaitMs,
    int? Retries)
{
    /// <summary>Parses `command --name value…`; null on a usage error.</summary>
    public static ProbeOptions? Parse(string[] args)
    {
        if (args.Length == 0 || args.Length % 2 == 0)
        {
            return null;
        }
        var named = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 1; i < args.Length; i += 2)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal))
            {
                return null;
            }
            named[args[i][2..]] = args[i + 1];
        }
        string? Get(string name) => named.TryGetValue(name, out var value) ? value : null;
        int GetInt(string name, int fallback) => Get(name) is { } text ? int.Parse(text, System.Globalization.CultureInfo.InvariantCulture) : fallback;
        var hub = Get("hub");
        if (hub is null)
        {
            return null;
        }
        return new ProbeOptions(
            args[0],
            hub,
            Get("consumer-group") ?? "$Default",
            Get("partition-key"),
            Get("partition"),
            GetInt("count", 1),
            Get("tag") ?? "",
            GetInt("expect", 0),
            Get("from") ?? "earliest",
            GetInt("timeout-ms", 60_000),
            GetInt("max-wait-ms", 2_000),
            Get("retries") is null ? null : GetInt("retries", 0));
    }
}
