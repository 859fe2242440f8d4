using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Azure.Messaging.EventHubs;
using Azure.Messaging.EventHubs.Consumer;
using Azure.Messaging.EventHubs.Producer;

namespace DotnetEventHubsProbe;

/// <summary>The probe's client commands: properties, send, read.</summary>
internal static class Commands
{
    /// <summary>GetEventHubPropertiesAsync, then GetPartitionPropertiesAsync for every partition.</summary>
    public static async Task<JsonObject> PropertiesAsync(string connectionString, ProbeOptions options, CancellationToken token)
    {
        await using var producer = new EventHubProducerClient(connectionString, options.Hub, ProducerOptions(options));
        var hub = await producer.GetEventHubPropertiesAsync(token);
        var partitions = new JsonArray();
        foreach (var id in hub.PartitionIds)
        {
            partitions.Add(EventJson.Partition(await producer.GetPartitionPropertiesAsync(id, token)));
        }
        return new JsonObject
        {
            ["name"] = hub.Name,
            ["createdOn"] = EventJson.Time(hub.CreatedOn),
            ["partitionIds"] = new JsonArray(hub.PartitionIds.Select(id => (JsonNode)id).ToArray()),
            ["partitions"] = partitions,
        };
    }

    /// <summary>One batch of Count events built with CreateBatchAsync, to a partition key, a partition, or the hub.</summary>
    public static async Task<JsonObject> SendAsync(string connectionString, ProbeOptions options, CancellationToken token)
    {
        await using var producer = new EventHubProducerClient(connectionString, options.Hub, ProducerOptions(options));
        var batchOptions = new CreateBatchOptions { PartitionKey = options.PartitionKey, PartitionId = options.PartitionId };
        using var batch = await producer.CreateBatchAsync(batchOptions, token);
        for (var index = 0; index < options.Count; index++)
        {
            if (!batch.TryAdd(SampleEvent(options.Tag, index)))
            {
                throw new InvalidOperationException($"event {index} does not fit the batch ({batch.SizeInBytes} of {batch.MaximumSizeInBytes} bytes)");
            }
        }
        await producer.SendAsync(batch, token);
        return new JsonObject
        {
            ["sent"] = options.Count,
            ["batchBytes"] = batch.SizeInBytes,
            ["maximumBatchBytes"] = batch.MaximumSizeInBytes,
        };
    }

    /// <summary>
    /// ReadEventsFromPartitionAsync on each partition (or the one given) from the given position, up to the partition's
    /// last enqueued event at the start; returns the events tagged Tag. Fails if fewer than Expect were found.
    /// </summary>
    public static async Task<JsonObject> ReadAsync(string connectionString, ProbeOptions options, CancellationToken token)
    {
        await using var consumer = new EventHubConsumerClient(options.ConsumerGroup, connectionString, options.Hub);
        var partitionIds = options.PartitionId is { } only ? new[] { only } : await consumer.GetPartitionIdsAsync(token);
        var events = new JsonArray();
        var scanned = 0;
        foreach (var partitionId in partitionIds)
        {
            var partition = await consumer.GetPartitionPropertiesAsync(partitionId, token);
            if (partition.IsEmpty)
            {
                continue;
            }
            var readOptions = new ReadEventOptions { MaximumWaitTime = TimeSpan.FromMilliseconds(options.MaxWaitMs) };
            await foreach (var received in consumer.ReadEventsFromPartitionAsync(partitionId, Position(options.From), readOptions, token))
            {
                // A null event: nothing arrived within MaximumWaitTime (the position is past the last event).
                if (received.Data is null)
                {
                    break;
                }
                scanned++;
                if (options.Tag == "" || (received.Data.Properties.TryGetValue("tag", out var tag) && Equals(tag, options.Tag)))
                {
                    events.Add(EventJson.Event(received.Partition.PartitionId, received.Data));
                }
                if (received.Data.SequenceNumber >= partition.LastEnqueuedSequenceNumber)
                {
                    break;
                }
            }
        }
        if (events.Count < options.Expect)
        {
            throw new InvalidOperationException($"read {events.Count} events tagged '{options.Tag}' of {options.Expect} expected ({scanned} scanned)");
        }
        return new JsonObject { ["scanned"] = scanned, ["events"] = events };
    }

    /// <summary>The SDK's default retry policy, or --retries N attempts after the first.</summary>
    private static EventHubProducerClientOptions ProducerOptions(ProbeOptions options) =>
        options.Retries is { } retries ? new EventHubProducerClientOptions { RetryOptions = new EventHubsRetryOptions { MaximumRetries = retries } } : new EventHubProducerClientOptions();

    /// <summary>earliest | latest | sequence:S | offset:O (inclusive) | enqueued:ISO.</summary>
    public static EventPosition Position(string from)
    {
        var colon = from.IndexOf(':', StringComparison.Ordinal);
        var kind = colon < 0 ? from : from[..colon];
        var value = colon < 0 ? "" : from[(colon + 1)..];
        return kind switch
        {
            "earliest" => EventPosition.Earliest,
            "latest" => EventPosition.Latest,
            "sequence" => EventPosition.FromSequenceNumber(long.Parse(value, CultureInfo.InvariantCulture), isInclusive: true),
            "offset" => EventPosition.FromOffset(value, isInclusive: true),
            "enqueued" => EventPosition.FromEnqueuedTime(DateTimeOffset.Parse(value, CultureInfo.InvariantCulture)),
            _ => throw new ArgumentException($"--from {from}: expected earliest, latest, sequence:S, offset:O or enqueued:ISO"),
        };
    }

    // Every AMQP type the app's trigger metadata may carry, so the test can compare them with the JS client's view.
    private static EventData SampleEvent(string tag, int index)
    {
        var body = Encoding.UTF8.GetBytes($"{{\"tag\":\"{tag}\",\"index\":{index}}}");
        var data = new EventData(body)
        {
            MessageId = $"{tag}-{index}",
            ContentType = "application/json",
            CorrelationId = $"{tag}-correlation",
        };
        data.Properties["tag"] = tag;
        data.Properties["index"] = index;
        data.Properties["long"] = 1L << 40;
        data.Properties["double"] = 0.5;
        data.Properties["bool"] = true;
        // A DateTime goes as an AMQP timestamp; a DateTimeOffset would go as the .NET SDKs' own described type
        // (com.microsoft:datetime-offset, ticks), which the JS client cannot read as a date.
        data.Properties["time"] = new DateTime(2026, 1, 2, 3, 4, 5, 678, DateTimeKind.Utc);
        data.Properties["uuid"] = new Guid("0f8fad5b-d9cb-469f-a165-70867728950e");
        data.Properties["binary"] = new byte[] { 1, 2, 3 };
        // What IoT Hub's built-in endpoint stamps; the endpoint must keep annotations it does not own.
        var annotations = data.GetRawAmqpMessage().MessageAnnotations;
        annotations["iothub-connection-device-id"] = "probe-device";
        annotations["iothub-enqueuedtime"] = new DateTimeOffset(2026, 1, 2, 3, 4, 5, 0, TimeSpan.Zero);
        annotations["iothub-message-source"] = "Telemetry";
        return data;
    }
}
