// dotnet-eventhubs-probe: drives Azure.Messaging.EventHubs (the .NET client under the Functions host's Event Hubs
// extension) against an Event Hubs endpoint and prints what it saw as one JSON object on stdout.
//
// The connection string comes from the environment (EVENTHUBS_CONNECTION_STRING), never from the command line, so
// it does not show in process listings. Commands:
//   properties --hub H [--retries N]                           hub and partition properties
//   send --hub H [--partition-key K | --partition P] --count N --tag T [--retries N]   one batch of N events tagged T
//   read --hub H --consumer-group CG --tag T --expect N [--from earliest|sequence:S|offset:O] [--partition P]
//                                                              reads until N events tagged T are seen (bounded)
//   processor --hub H --consumer-group CG --tag T --expect N   (see ProbeProcessor.cs; needs STORAGE_CONNECTION_STRING)
// Exit code 0 on success; 2 with {"error":{...}} when the service refused or failed; 64 on a usage error.
using System.Text.Json;
using System.Text.Json.Nodes;
using Azure.Messaging.EventHubs;
using DotnetEventHubsProbe;

var options = ProbeOptions.Parse(args);
if (options is null)
{
    Console.Error.WriteLine("usage: dotnet-eventhubs-probe properties|send|read|processor --hub H [options]; EVENTHUBS_CONNECTION_STRING in the environment");
    return 64;
}

var connectionString = Environment.GetEnvironmentVariable("EVENTHUBS_CONNECTION_STRING");
if (string.IsNullOrEmpty(connectionString))
{
    Console.Error.WriteLine("EVENTHUBS_CONNECTION_STRING is not set");
    return 64;
}

// PROBE_VERBOSE=1: the Azure SDK's own event-source log on stderr (link attach, CBS, retries), for diagnosis.
using var sdkLog = Environment.GetEnvironmentVariable("PROBE_VERBOSE") == "1"
    ? Azure.Core.Diagnostics.AzureEventSourceListener.CreateConsoleLogger(System.Diagnostics.Tracing.EventLevel.Verbose)
    : null;

// Bounds every command: a hung link fails the probe rather than the test's timeout.
using var deadline = new CancellationTokenSource(TimeSpan.FromMilliseconds(options.TimeoutMs));
var started = DateTimeOffset.UtcNow;
try
{
    JsonObject result = options.Command switch
    {
        "properties" => await Commands.PropertiesAsync(connectionString, options, deadline.Token),
        "send" => await Commands.SendAsync(connectionString, options, deadline.Token),
        "read" => await Commands.ReadAsync(connectionString, options, deadline.Token),
        "processor" => await ProbeProcessor.RunAsync(connectionString, options, deadline.Token),
        _ => throw new ArgumentException($"unknown command {options.Command}"),
    };
    result["elapsedMs"] = (long)(DateTimeOffset.UtcNow - started).TotalMilliseconds;
    Console.WriteLine(result.ToJsonString());
    return 0;
}
catch (Exception error)
{
    Console.WriteLine(new JsonObject { ["error"] = Describe(error) }.ToJsonString());
    return 2;
}

// What the test asserts on: the exception type, the Event Hubs failure reason and the message chain.
static JsonObject Describe(Exception error)
{
    var described = new JsonObject
    {
        ["type"] = error.GetType().FullName,
        ["message"] = error.Message,
        // Where it was thrown (the top frames), to tell a client-side failure from the server's refusal.
        ["stack"] = string.Join(" | ", (error.StackTrace ?? "").Split('\n').Take(8).Select(frame => frame.Trim())),
    };
    if (error is EventHubsException eventHubs)
    {
        described["reason"] = eventHubs.Reason.ToString();
        described["isTransient"] = eventHubs.IsTransient;
    }
    if (error.InnerException is not null)
    {
        described["inner"] = Describe(error.InnerException);
    }
    return described;
}
