using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Azure.Messaging.EventHubs;

namespace DotnetEventHubsProbe;

/// <summary>Serialises what the .NET client exposes, keeping each value's .NET type next to it.</summary>
internal static class EventJson
{
    /// <summary>An event as the client sees it after a read.</summary>
    public static JsonObject Event(string partitionId, EventData data) => new()
    {
        ["partitionId"] = partitionId,
        ["body"] = Encoding.UTF8.GetString(data.EventBody.ToArray()),
        ["messageId"] = data.MessageId,
        ["contentType"] = data.ContentType,
        ["correlationId"] = data.CorrelationId,
        ["sequenceNumber"] = data.SequenceNumber,
        ["offset"] = data.OffsetString,
        ["enqueuedTime"] = Time(data.EnqueuedTime),
        ["partitionKey"] = data.PartitionKey,
        ["properties"] = Map(data.Properties),
        ["systemProperties"] = Map(data.SystemProperties),
    };

    /// <summary>GetPartitionPropertiesAsync's answer.</summary>
    public static JsonObject Partition(PartitionProperties partition) => new()
    {
        ["id"] = partition.Id,
        ["eventHubName"] = partition.EventHubName,
        ["isEmpty"] = partition.IsEmpty,
        ["beginningSequenceNumber"] = partition.BeginningSequenceNumber,
        ["lastEnqueuedSequenceNumber"] = partition.LastEnqueuedSequenceNumber,
        ["lastEnqueuedOffset"] = partition.LastEnqueuedOffsetString,
        ["lastEnqueuedTime"] = Time(partition.LastEnqueuedTime),
    };

    /// <summary>ISO 8601 UTC with milliseconds, like JavaScript's Date.toISOString().</summary>
    public static string Time(DateTimeOffset time) =>
        time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    private static JsonObject Map(IEnumerable<KeyValuePair<string, object>> entries)
    {
        var map = new JsonObject();
        foreach (var (key, value) in entries.OrderBy(entry => entry.Key, StringComparer.Ordinal))
        {
            map[key] = new JsonObject { ["type"] = value?.GetType().Name ?? "null", ["value"] = Value(value) };
        }
        return map;
    }

    private static JsonNode? Value(object? value) => value switch
    {
        null => null,
        string text => text,
        bool flag => flag,
        int number => number,
        long number => number,
        uint number => number,
        ulong number => number.ToString(CultureInfo.InvariantCulture),
        short number => number,
        ushort number => number,
        sbyte number => number,
        byte number => number,
        double number => number,
        float number => number,
        DateTimeOffset time => Time(time),
        DateTime time => Time(new DateTimeOffset(DateTime.SpecifyKind(time, DateTimeKind.Utc))),
        Guid uuid => uuid.ToString(),
        byte[] bytes => Convert.ToBase64String(bytes),
        ArraySegment<byte> bytes => Convert.ToBase64String(bytes.ToArray()),
        _ => value.ToString(),
    };
}
