// Azure infrastructure of the IoT Functions backend (azd: `azd up` / `azd provision` into one resource group).
//
//   devices ──► IoT Hub ──(built-in endpoint, consumer group ingest)──► function app: ingestTelemetry
//                  │                                                      ├─► Cosmos DB (deviceState, …)
//                  │                                                      └─► archive storage (telemetry-raw, …)
//                  └──(consumer group asa)──► Stream Analytics ──► Event Hubs `anomalies` ──(notify)──► notifyAnomalies
//
// Authentication: managed identities and Azure RBAC everywhere the services and the app allow it (Cosmos DB,
// both storage accounts, Event Hubs, IoT Hub service APIs, Application Insights, Key Vault); no key is an app
// setting. Two exceptions, both IoT Hub shared access policies with ServiceConnect only (never iothubowner):
//   * the built-in Event Hub-compatible endpoint does not accept Microsoft Entra ID (it is not an Event Hubs
//     namespace of ours, so no Azure Event Hubs Data Receiver role can be granted on it), so the function app
//     reads it with a connection string of the `ingest-listen` policy, kept in Key Vault and given to the app as
//     a Key Vault reference (IotHubEventsConnection);
//   * Stream Analytics IoT Hub inputs authenticate with a policy key only (`asa-listen`).
// Start the Stream Analytics job after provisioning (it is created stopped), e.g.
//   az stream-analytics job start -g <resource group> -n <STREAM_ANALYTICS_JOB_NAME> --output-start-mode JobStartTime
// Stop it before re-provisioning: the deployment replaces the job's query, input and output, which Stream
// Analytics does not accept while the job runs.

targetScope = 'resourceGroup'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment: seeds every resource name and is the azd-env-name tag.')
param environmentName string

@minLength(1)
@description('Region of every resource; it must offer Flex Consumption, IoT Hub and Stream Analytics.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string = resourceGroup().location

@description('Object id of the user or service principal running azd (AZURE_PRINCIPAL_ID); a user gets data access to the archive, Cosmos DB and IoT Hub for debugging. Empty: no access granted.')
param principalId string = ''

@description('Type of principalId (AZURE_PRINCIPAL_TYPE: User or ServicePrincipal). A pipeline\'s service principal needs no data access, so it gets none.')
param principalType string = 'User'

@secure()
@description('Slack incoming webhook for alerts and job notices (SlackWebhookUrl). Empty: alerts are only logged and kept in alarms.')
param slackWebhookUrl string = ''

@allowed(['F1', 'S1', 'S2', 'S3'])
@description('IoT Hub tier (S1: twins, jobs and direct methods; F1 free for a trial, one per subscription).')
param iotHubSkuName string = 'S1'

@minValue(1)
@description('IoT Hub units.')
param iotHubCapacity int = 1

@minValue(2)
@maxValue(32)
@description('Partitions of the IoT Hub built-in endpoint (fixed at creation).')
param iotHubPartitionCount int = 4

@minValue(1)
@description('Stream Analytics streaming units (asa/JobConfig.json uses 3).')
param asaStreamingUnits int = 3

@minValue(40)
@maxValue(1000)
@description('Largest number of Flex Consumption instances (the cost ceiling under load).')
param functionMaximumInstanceCount int = 40

@secure()
@minLength(44)
@description('32 random bytes, base64, encrypting generated device keys at rest (Provisioning__KeysEncryptionKey, stored in Key Vault): azd env set PROVISIONING_KEYS_ENCRYPTION_KEY "$(openssl rand -base64 32)". Changing it makes the keys still inside the results window unreadable.')
param provisioningKeysEncryptionKey string

@minValue(1)
@maxValue(8760)
@description('Hours the provisioning results serve device keys (Provisioning__KeysRetentionHours); a lifecycle rule deletes key-bearing blobs after that many hours rounded up to whole days.')
param provisioningKeysRetentionHours int = 24

// Every resource name derives from the environment, the subscription and the resource group.
var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = {
  'azd-env-name': environmentName
}

var iotHubName = 'iot-${resourceToken}'
var eventHubNamespaceName = 'evhns-${resourceToken}'
var cosmosAccountName = 'cosmos-${resourceToken}'
var archiveStorageName = 'starch${resourceToken}'
var hostStorageName = 'stfunc${resourceToken}'
var logAnalyticsName = 'log-${resourceToken}'
var appInsightsName = 'appi-${resourceToken}'
var functionPlanName = 'plan-${resourceToken}'
var functionAppName = 'func-${resourceToken}'
var streamAnalyticsJobName = 'asa-${resourceToken}'
var keyVaultName = 'kv-${resourceToken}'

// Names the code and the ASA project use: the defaults of src/config.ts, asa/Inputs/IoTHubInput.json and
// asa/Outputs/Anomalies.json. The resources below are created under these names; `appSettings` repeats the ones
// the app is told as literals (test/unit/infra/bicep-consistency.test.ts reads them there): change both together.
var cosmosDatabaseName = 'iot'
var cosmosStateContainerName = 'deviceState'
var cosmosDevicesContainerName = 'devices'
var cosmosReconciliationContainerName = 'reconciliation'
var cosmosAlarmsContainerName = 'alarms'
var cosmosJobsContainerName = 'jobs'
var rawArchiveContainerName = 'telemetry-raw'
var deadLetterContainerName = 'telemetry-deadletter'
var provisioningWorkContainerName = 'provisioning-work'
var provisioningResultsContainerName = 'provisioning-results'
var jobDeviceResultsContainerName = 'job-device-results'
var ingestConsumerGroupName = 'ingest'
var asaConsumerGroupName = 'asa'
var anomaliesHubName = 'anomalies'
var notifyConsumerGroupName = 'notify'
var replayHubName = 'replay'
var replayConsumerGroupName = 'replay'
var ingestPolicyName = 'ingest-listen'
var asaPolicyName = 'asa-listen'
var asaInputName = 'IoTHubInput'
var asaOutputName = 'Anomalies'
var asaOutputPartitionKey = 'deviceId'
var deploymentContainerName = 'app-package'
var iotHubEventsSecretName = 'iothub-events-connection'
var provisioningKeysSecretName = 'provisioning-keys-encryption-key'
var slackWebhookSecretName = 'slack-webhook-url'
// Not created in Azure, on purpose: the table identity store's tables 'identities' (IdentityTableName) and
// 'localjobs' serve IdentityStore=table, i.e. local runs; Azure uses IdentityStore=iothub. The durable task hub
// 'IotBackendHub' (host.json) is created by the Durable Functions extension in the host storage account.

// The Stream Analytics project, read from the repository at build time (no copy of the query to drift).
var anomaliesQuery = loadTextContent('../asa/anomalies.asaql')
var asaJobConfig = loadJsonContent('../asa/JobConfig.json')

// Observability: Log Analytics + Application Insights.
module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: logAnalyticsName
    appInsightsName: appInsightsName
    location: location
    tags: tags
  }
}

// Functions host storage (AzureWebJobsStorage, durable task hub, deployment package).
module hostStorage 'modules/storage-host.bicep' = {
  name: 'host-storage'
  params: {
    name: hostStorageName
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
  }
}

// Data Lake Storage (hierarchical namespace): raw archive, dead letters, provisioning blobs.
module archiveStorage 'modules/storage-archive.bicep' = {
  name: 'archive-storage'
  params: {
    name: archiveStorageName
    location: location
    tags: tags
    rawArchiveContainerName: rawArchiveContainerName
    provisioningWorkContainerName: provisioningWorkContainerName
    provisioningResultsContainerName: provisioningResultsContainerName
    // Lifecycle management counts whole days: the window rounded up.
    keysRetentionDays: (provisioningKeysRetentionHours + 23) / 24
    containerNames: [
      rawArchiveContainerName
      deadLetterContainerName
      provisioningWorkContainerName
      provisioningResultsContainerName
      jobDeviceResultsContainerName
    ]
  }
}

// Cosmos DB serverless: state, device catalog, reconciliation, alarms, jobs.
module cosmos 'modules/cosmos.bicep' = {
  name: 'cosmos'
  params: {
    name: cosmosAccountName
    location: location
    tags: tags
    databaseName: cosmosDatabaseName
    containerNames: [
      cosmosStateContainerName
      cosmosDevicesContainerName
      cosmosReconciliationContainerName
      cosmosAlarmsContainerName
      cosmosJobsContainerName
    ]
  }
}

// Event Hubs: the anomalies hub between Stream Analytics and notifyAnomalies; the replay hub (npm run replay).
module eventHubs 'modules/eventhubs.bicep' = {
  name: 'eventhubs'
  params: {
    name: eventHubNamespaceName
    location: location
    tags: tags
    hubName: anomaliesHubName
    consumerGroupName: notifyConsumerGroupName
    replayHubName: replayHubName
    replayConsumerGroupName: replayConsumerGroupName
  }
}

// IoT Hub: devices, twins, jobs; built-in endpoint with one consumer group per reader.
module iotHub 'modules/iothub.bicep' = {
  name: 'iothub'
  params: {
    name: iotHubName
    location: location
    tags: tags
    skuName: iotHubSkuName
    capacity: iotHubCapacity
    partitionCount: iotHubPartitionCount
    consumerGroupNames: [
      ingestConsumerGroupName
      asaConsumerGroupName
    ]
    ingestPolicyName: ingestPolicyName
    asaPolicyName: asaPolicyName
  }
}

// IotHubEventsConnection. The IoT Hub built-in endpoint accepts shared access signatures only (Microsoft Entra ID
// covers IoT Hub's service APIs, not the Event Hub-compatible endpoint), so this is the one connection string the
// app needs: a ServiceConnect-only policy, EntityPath = the Event Hub-compatible name. It goes into Key Vault
// (a @secure() parameter, never an output) and the app setting is a Key Vault reference to it;
// IotHubEventsConnection__fullyQualifiedNamespace is not set (a managed identity would not authenticate there).
var iotHubIngestPolicyId = resourceId('Microsoft.Devices/IotHubs/IotHubKeys', iotHubName, ingestPolicyName)
var iotHubEventsConnectionString = 'Endpoint=${iotHub.outputs.eventHubEndpoint};SharedAccessKeyName=${ingestPolicyName};SharedAccessKey=${listKeys(iotHubIngestPolicyId, '2023-06-30').primaryKey};EntityPath=${iotHub.outputs.eventHubPath}'

// Key Vault: the IoT Hub events connection string and the device keys' encryption key, read by the app through
// Key Vault references.
module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: keyVaultName
    location: location
    tags: tags
    iotHubEventsSecretName: iotHubEventsSecretName
    iotHubEventsConnectionString: iotHubEventsConnectionString
    provisioningKeysSecretName: provisioningKeysSecretName
    provisioningKeysEncryptionKey: provisioningKeysEncryptionKey
    slackWebhookSecretName: slackWebhookSecretName
    slackWebhookUrl: slackWebhookUrl
    slackWebhookConfigured: !empty(slackWebhookUrl)
  }
}

// Flex Consumption plan and function app (settings are written below, once every dependency exists).
module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  params: {
    planName: functionPlanName
    appName: functionAppName
    location: location
    tags: tags
    hostStorageBlobEndpoint: hostStorage.outputs.blobEndpoint
    deploymentContainerName: hostStorage.outputs.deploymentContainerName
    maximumInstanceCount: functionMaximumInstanceCount
  }
}

// Least-privilege data roles of the function app's managed identity.
// Resource names are passed as the template's own variables, not as module outputs, so that what-if
// (`azd provision --preview`) can predict the role assignments (linter rule what-if-short-circuiting); the
// dependsOn list keeps the order the outputs used to give.
module functionRoles 'modules/function-roles.bicep' = {
  name: 'function-roles'
  params: {
    // The identity exists only once the site does: a runtime value by nature (what-if shows these as unknown).
    #disable-next-line what-if-short-circuiting
    principalId: functionApp.outputs.principalId
    hostStorageName: hostStorageName
    archiveStorageName: archiveStorageName
    cosmosAccountName: cosmosAccountName
    cosmosDatabaseName: cosmosDatabaseName
    eventHubNamespaceName: eventHubNamespaceName
    anomaliesHubName: anomaliesHubName
    replayHubName: replayHubName
    iotHubName: iotHubName
    appInsightsName: appInsightsName
    keyVaultName: keyVaultName
    iotHubEventsSecretName: iotHubEventsSecretName
    provisioningKeysSecretName: provisioningKeysSecretName
    slackWebhookSecretName: empty(slackWebhookUrl) ? '' : slackWebhookSecretName
  }
  // hostStorage: through functionApp (principalId above).
  dependsOn: [
    archiveStorage
    cosmos
    eventHubs
    iotHub
    monitoring
    keyVault
  ]
}

// Data access for the person deploying (optional; never for a pipeline's service principal).
module principalRoles 'modules/principal-roles.bicep' = if (!empty(principalId) && principalType != 'ServicePrincipal') {
  name: 'principal-roles'
  params: {
    principalId: principalId
    archiveStorageName: archiveStorageName
    cosmosAccountName: cosmosAccountName
    iotHubName: iotHubName
    eventHubNamespaceName: eventHubNamespaceName
    replayHubName: replayHubName
  }
  // After functionRoles: both write a Cosmos DB SQL role assignment on the same account, and Cosmos DB refuses a
  // second control-plane operation while one is in progress (412 "There is already an operation in progress"),
  // which fails a provision now and then. https://learn.microsoft.com/azure/cosmos-db/how-to-setup-rbac
  dependsOn: [
    archiveStorage
    cosmos
    eventHubs
    iotHub
    functionRoles
  ]
}

// Stream Analytics: the hot-path rules, IoT Hub in, anomalies hub out (managed identity).
module streamAnalytics 'modules/stream-analytics.bicep' = {
  name: 'stream-analytics'
  params: {
    name: streamAnalyticsJobName
    location: location
    tags: tags
    query: anomaliesQuery
    jobConfig: asaJobConfig
    streamingUnits: asaStreamingUnits
    inputName: asaInputName
    outputName: asaOutputName
    iotHubName: iotHub.outputs.name
    iotHubPolicyName: asaPolicyName
    consumerGroupName: asaConsumerGroupName
    eventHubNamespaceName: eventHubNamespaceName
    anomaliesHubName: anomaliesHubName
    outputPartitionKey: asaOutputPartitionKey
  }
  dependsOn: [
    eventHubs
  ]
}

var apiBaseUrl = 'https://${functionApp.outputs.defaultHostName}/api'

// Health: GET /api/health polled by an Application Insights standard availability test. Not App Service's
// siteConfig.healthCheckPath: that feature is for Premium and Dedicated plans (it pings every instance each
// minute to take unhealthy ones out of rotation), while Flex Consumption manages its instances itself and
// scales to zero, which a per-minute ping per instance would defeat.
module availabilityTest 'modules/availability-test.bicep' = {
  name: 'availability-test'
  params: {
    name: 'health-${resourceToken}'
    location: location
    tags: tags
    appInsightsName: appInsightsName
    healthUrl: '${apiBaseUrl}/health'
  }
  dependsOn: [
    monitoring
  ]
}

// Every app setting of the function app, one per line. Settings src/config.ts reads that are deliberately absent:
//   * key-based or local-only, replaced by the identity-based variants below: CosmosDbKey,
//     CosmosDbAllowSelfSignedTls, ArchiveStorageConnectionString, IotHubRegistryConnectionString,
//     AnomaliesEventHubConnection, IotHubEventsConnection__fullyQualifiedNamespace (see above);
//   * the table identity store's (IdentityStore=table, local runs): IdentityStorageConnectionString,
//     IdentityStore__EncryptionKey, IdentityTableName;
//   * per-fleet choices an operator sets on the app (they survive re-provisioning, function-app-settings.bicep):
//     Provisioning__Hooks (webhook URLs, may carry tokens), Provisioning__TwinTemplates, and
//     Provisioning__RegistryOpsPerMinute, whose default (100) fits one S1/S2 unit: raise it to 100 per unit, or
//     5,000 per S3 unit, when iotHubCapacity or iotHubSkuName changes;
//   * tuning knobs that keep the code's defaults until measured otherwise: Alerts__CooldownMinutes,
//     Jobs__PollIntervalSeconds, Jobs__MaxDeviceResults, Provisioning__MaxMetadataBytes, Ingest__TimestampFields,
//     Ingest__MaxFutureSkewSeconds, Ingest__EarliestTimestamp, Ingest__MaxRecordBytes, Ingest__MaxDepth,
//     Ingest__MaxFields, Ingest__StateWriteConcurrency, Ingest__StateCacheSize, Ingest__StateCacheTtlSeconds,
//     Ingest__StateCacheMaxBytes, Ingest__MaxStateFieldsPerSection, Ingest__MaxRetryCount, Http__MaxBodyBytes,
//     Http__MaxBulkBodyBytes, Alerts__MaxRetryCount, Alerts__DeliveryTimeoutSeconds, Alerts__MaxRetryAfterSeconds,
//     Alerts__MaxQueueWaitSeconds, Alerts__NotifyLeaseSeconds, Alerts__RedeliverySchedule,
//     Alerts__RedeliveryHorizonHours, Alerts__RedeliveryBackoffSeconds.
// FUNCTIONS_WORKER_RUNTIME and FUNCTIONS_EXTENSION_VERSION are not app settings on Flex Consumption
// (functionAppConfig.runtime).
var appSettings = {
  // Functions host: storage and telemetry with the managed identity.
  AzureWebJobsStorage__accountName: hostStorage.outputs.name
  AzureWebJobsStorage__credential: 'managedidentity'
  APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'
  // ingestTelemetry: IoT Hub built-in endpoint (connection string in Key Vault, see above).
  IotHubEventsConnection: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.iotHubEventsSecretUri})'
  IotHubEventHubName: iotHub.outputs.eventHubPath
  IngestConsumerGroup: 'ingest'
  // Cosmos DB with Microsoft Entra ID (no CosmosDbKey).
  CosmosDb__accountEndpoint: cosmos.outputs.endpoint
  CosmosDbDatabaseName: 'iot'
  CosmosDbStateContainerName: 'deviceState'
  CosmosDbDevicesContainerName: 'devices'
  CosmosDbReconciliationContainerName: 'reconciliation'
  CosmosDbAlarmsContainerName: 'alarms'
  CosmosDbJobsContainerName: 'jobs'
  // Blob storage with Microsoft Entra ID (no ArchiveStorageConnectionString).
  ArchiveStorage__blobServiceUri: archiveStorage.outputs.blobEndpoint
  RawArchiveContainerName: 'telemetry-raw'
  DeadLetterContainerName: 'telemetry-deadletter'
  ProvisioningWorkContainerName: 'provisioning-work'
  ProvisioningResultsContainerName: 'provisioning-results'
  JobDeviceResultsContainerName: jobDeviceResultsContainerName
  // Generated device keys at rest: encrypted with a key from Key Vault, served for a bounded window.
  Provisioning__KeysEncryptionKey: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.provisioningKeysSecretUri})'
  Provisioning__KeysRetentionHours: string(provisioningKeysRetentionHours)
  // Databases, containers and blob containers exist: this template creates them.
  CreateResourcesIfMissing: 'false'
  // Provisioning: IoT Hub identity registry, twins and jobs with Microsoft Entra ID.
  IotHubHostName: iotHub.outputs.hostName
  IdentityStore: 'iothub'
  IotHubRegistry__hostName: iotHub.outputs.hostName
  // notifyAnomalies: the anomalies hub with Microsoft Entra ID (no AnomaliesEventHubConnection).
  AnomaliesEventHubConnection__fullyQualifiedNamespace: eventHubs.outputs.fullyQualifiedNamespace
  AnomaliesEventHubConnection__credential: 'managedidentity'
  AnomaliesEventHubName: 'anomalies'
  AnomaliesConsumerGroup: 'notify'
  // replayTelemetry: the replay hub with Microsoft Entra ID (npm run replay sends there, docs/adr/0013).
  ReplayEventHubConnection__fullyQualifiedNamespace: eventHubs.outputs.fullyQualifiedNamespace
  ReplayEventHubConnection__credential: 'managedidentity'
  ReplayEventHubName: replayHubName
  ReplayConsumerGroup: replayConsumerGroupName
  // Alerts: the Slack webhook URL is a credential, so a Key Vault reference (empty: alerts are only logged).
  SlackWebhookUrl: empty(slackWebhookUrl) ? '' : '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.slackWebhookSecretUri})'
  PublicApiBaseUrl: apiBaseUrl
}

// The function app's settings (after its roles, so that the restart they cause finds its permissions in place).
module functionAppSettings 'modules/function-app-settings.bicep' = {
  name: 'function-app-settings'
  params: {
    functionAppName: functionAppName
    appSettings: appSettings
  }
  // The site itself: through appSettings (PublicApiBaseUrl reads its host name).
  dependsOn: [
    functionRoles
  ]
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output SERVICE_API_NAME string = functionApp.outputs.name
output API_BASE_URL string = apiBaseUrl
output IOTHUB_NAME string = iotHub.outputs.name
output IOTHUB_HOST_NAME string = iotHub.outputs.hostName
output IOTHUB_EVENTHUB_COMPATIBLE_ENDPOINT string = iotHub.outputs.eventHubEndpoint
output IOTHUB_EVENTHUB_COMPATIBLE_NAME string = iotHub.outputs.eventHubPath
output COSMOS_ENDPOINT string = cosmos.outputs.endpoint
output COSMOS_DATABASE_NAME string = cosmos.outputs.databaseName
output ARCHIVE_STORAGE_ACCOUNT_NAME string = archiveStorage.outputs.name
output ARCHIVE_BLOB_ENDPOINT string = archiveStorage.outputs.blobEndpoint
output HOST_STORAGE_ACCOUNT_NAME string = hostStorage.outputs.name
output EVENTHUBS_NAMESPACE string = eventHubs.outputs.fullyQualifiedNamespace
output ANOMALIES_EVENTHUB_NAME string = eventHubs.outputs.hubName
output STREAM_ANALYTICS_JOB_NAME string = streamAnalytics.outputs.name
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
