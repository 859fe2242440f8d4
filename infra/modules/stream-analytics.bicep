// Stream Analytics job of the hot path (asa/): reads IoT Hub telemetry through its own consumer group, runs the
// rules of asa/anomalies.asaql and writes anomaly records to the anomalies hub with its managed identity.

param name string
param location string
param tags { *: string }

@description('The query, loaded from the repository by main.bicep (asa/anomalies.asaql).')
param query string

// The fields of asa/JobConfig.json this template uses (the compiler checks the file against this type).
type jobConfigType = {
  JobType: 'Cloud' | 'Edge'
  CompatibilityLevel: '1.0' | '1.1' | '1.2'
  DataLocale: string
  EventsOutOfOrderPolicy: 'Adjust' | 'Drop'
  EventsOutOfOrderMaxDelayInSeconds: int
  EventsLateArrivalMaxDelayInSeconds: int
  OutputErrorPolicy: 'Drop' | 'Stop'
  ContentStoragePolicy: 'JobStorageAccount' | 'SystemAccount'
  StreamingUnits: int
}

@description('asa/JobConfig.json, loaded by main.bicep: event ordering, compatibility level, locale.')
param jobConfig jobConfigType

// Cost: a Standard job bills streaming units per hour while it runs, whether or not events arrive (about
// 0.11 USD per SU-hour: some 240 USD a month at 3 SU). 3 SU is the project's JobConfig and suits the per-device
// ML functions over a small fleet; 1 SU is enough for a trial. The job is created stopped: nothing is billed
// until someone starts it.
@minValue(1)
param streamingUnits int = 3

@description('Input alias the query reads (FROM IoTHubInput).')
param inputName string

@description('Output alias the query writes (INTO Anomalies).')
param outputName string

param iotHubName string

@description('IoT Hub shared access policy (ServiceConnect only) for the input.')
param iotHubPolicyName string

@description('Consumer group on the IoT Hub built-in endpoint reserved for this job.')
param consumerGroupName string

param eventHubNamespaceName string
param anomaliesHubName string

@description('Output column that chooses the anomalies hub partition.')
param outputPartitionKey string

// Azure Event Hubs Data Sender (built-in role): the job's identity sends to the anomalies hub.
var eventHubsDataSenderRoleId = '2b629674-e913-4c01-ae53-ef4638d8f975'

// The policy's key is read at deployment time and goes straight into the job (never an output or a parameter).
var iotHubPolicyId = resourceId('Microsoft.Devices/IotHubs/IotHubKeys', iotHubName, iotHubPolicyName)

resource eventHubNamespace 'Microsoft.EventHub/namespaces@2026-01-01' existing = {
  name: eventHubNamespaceName
}

resource anomaliesHub 'Microsoft.EventHub/namespaces/eventhubs@2026-01-01' existing = {
  parent: eventHubNamespace
  name: anomaliesHubName
}

// The job. Input: IoT Hub, which Stream Analytics reads with a shared access policy key only (no managed identity
// for IoT Hub inputs), hence the dedicated ServiceConnect policy. Output: Event Hubs with the job's
// system-assigned identity (authenticationMode Msi), so no Event Hubs key exists anywhere.
resource job 'Microsoft.StreamAnalytics/streamingjobs@2020-03-01' = {
  name: name
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    sku: {
      name: 'Standard'
    }
    jobType: jobConfig.JobType
    compatibilityLevel: jobConfig.CompatibilityLevel
    dataLocale: jobConfig.DataLocale
    eventsOutOfOrderPolicy: jobConfig.EventsOutOfOrderPolicy
    eventsOutOfOrderMaxDelayInSeconds: jobConfig.EventsOutOfOrderMaxDelayInSeconds
    eventsLateArrivalMaxDelayInSeconds: jobConfig.EventsLateArrivalMaxDelayInSeconds
    outputErrorPolicy: jobConfig.OutputErrorPolicy
    contentStoragePolicy: jobConfig.ContentStoragePolicy
    // No outputStartMode: setting it starts the job as soon as it is created (billing from creation, and its output
    // fails until the Event Hubs Data Sender role below exists). The job is created stopped; start it after
    // provisioning (main.bicep). https://learn.microsoft.com/azure/templates/microsoft.streamanalytics/streamingjobs
    inputs: [
      {
        name: inputName
        properties: {
          type: 'Stream'
          datasource: {
            type: 'Microsoft.Devices/IotHubs'
            properties: {
              iotHubNamespace: iotHubName
              sharedAccessPolicyName: iotHubPolicyName
              sharedAccessPolicyKey: listKeys(iotHubPolicyId, '2023-06-30').primaryKey
              consumerGroupName: consumerGroupName
              endpoint: 'messages/events'
            }
          }
          serialization: {
            type: 'Json'
            properties: {
              encoding: 'UTF8'
            }
          }
        }
      }
    ]
    outputs: [
      {
        name: outputName
        properties: {
          datasource: {
            type: 'Microsoft.EventHub/EventHub'
            properties: {
              serviceBusNamespace: eventHubNamespaceName
              eventHubName: anomaliesHubName
              authenticationMode: 'Msi'
              partitionKey: outputPartitionKey
              propertyColumns: []
            }
          }
          serialization: {
            type: 'Json'
            properties: {
              encoding: 'UTF8'
              format: 'LineSeparated'
            }
          }
        }
      }
    ]
    transformation: {
      name: 'Transformation'
      properties: {
        streamingUnits: streamingUnits
        query: query
      }
    }
  }
}

// The job's identity may send to the anomalies hub and nothing else (scope: the hub, not the namespace).
resource anomaliesHubSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(anomaliesHub.id, job.id, eventHubsDataSenderRoleId)
  scope: anomaliesHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventHubsDataSenderRoleId)
    principalId: job.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

output name string = job.name
output principalId string = job.identity.principalId
