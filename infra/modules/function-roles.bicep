// Role assignments of the function app's system-assigned managed identity: each role on the narrowest scope that
// covers what the code does (src/infra/adapters.ts, the Functions host and its extensions).

@description('Object (principal) id of the function app\'s system-assigned identity.')
param principalId string

param hostStorageName string
param archiveStorageName string
param cosmosAccountName string
param cosmosDatabaseName string
param eventHubNamespaceName string
param anomaliesHubName string
param replayHubName string
param iotHubName string
param appInsightsName string
param keyVaultName string
param iotHubEventsSecretName string
param provisioningKeysSecretName string

@description('Key Vault secret holding SlackWebhookUrl; empty when no webhook is configured.')
param slackWebhookSecretName string = ''

// Built-in role definition ids (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
// Storage Blob Data Owner: host blobs (Event Hubs checkpoints, leases, durable task hub, deployment package).
var storageBlobDataOwnerRoleId = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
// Storage Queue Data Contributor: durable task hub control and work-item queues.
var storageQueueDataContributorRoleId = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
// Storage Table Data Contributor: durable task hub history and instances tables.
var storageTableDataContributorRoleId = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
// Storage Blob Data Contributor: raw archive, dead letters, provisioning work and results blobs.
var storageBlobDataContributorRoleId = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
// Azure Event Hubs Data Receiver: the notifyAnomalies trigger on the anomalies hub.
var eventHubsDataReceiverRoleId = 'a638d3c7-ab3a-418d-83e6-5f17a39d4fde'
// Monitoring Metrics Publisher: the host sends telemetry to Application Insights with Microsoft Entra ID.
var monitoringMetricsPublisherRoleId = '3913510d-42f4-4e42-8a64-420c390055eb'
// Key Vault Secrets User: resolve the IotHubEventsConnection Key Vault reference (scope: that one secret).
var keyVaultSecretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6'
// Cosmos DB Built-in Data Contributor (a Cosmos DB data-plane role, not an Azure RBAC role): read, write, query
// items. It cannot create databases or containers, which this template does (CreateResourcesIfMissing=false).
var cosmosDataContributorRoleId = '00000000-0000-0000-0000-000000000002'

var hostStorageRoleIds = [
  storageBlobDataOwnerRoleId
  storageQueueDataContributorRoleId
  storageTableDataContributorRoleId
]

// The IoT Hub data actions the app uses (src/infra/iothub/): identity registry (create, get, bulk add/update/remove,
// delete), twins (get, patch, query), jobs (scheduleTwinUpdate, scheduleDeviceMethod, getJob, cancelJob: job reads
// and writes) and the direct method a method job invokes. Not granted: cloud-to-device messages, configurations,
// modules, statistics, file upload notifications, which the built-in IoT Hub Data Contributor
// (Microsoft.Devices/IotHubs/*) would also allow. Data action names:
// https://learn.microsoft.com/azure/iot-hub/iot-hub-dev-guide-azure-ad-rbac#built-in-roles-for-iot-hub
var iotHubDataActions = [
  'Microsoft.Devices/IotHubs/devices/read'
  'Microsoft.Devices/IotHubs/devices/write'
  'Microsoft.Devices/IotHubs/devices/delete'
  'Microsoft.Devices/IotHubs/twins/read'
  'Microsoft.Devices/IotHubs/twins/write'
  'Microsoft.Devices/IotHubs/jobs/read'
  'Microsoft.Devices/IotHubs/jobs/write'
  'Microsoft.Devices/IotHubs/directMethods/invoke/action'
]

resource hostStorage 'Microsoft.Storage/storageAccounts@2025-06-01' existing = {
  name: hostStorageName
}

resource archiveStorage 'Microsoft.Storage/storageAccounts@2025-06-01' existing = {
  name: archiveStorageName
}

resource cosmos 'Microsoft.DocumentDB/databaseAccounts@2025-10-15' existing = {
  name: cosmosAccountName
}

resource eventHubNamespace 'Microsoft.EventHub/namespaces@2026-01-01' existing = {
  name: eventHubNamespaceName
}

resource anomaliesHub 'Microsoft.EventHub/namespaces/eventhubs@2026-01-01' existing = {
  parent: eventHubNamespace
  name: anomaliesHubName
}

resource iotHub 'Microsoft.Devices/IotHubs@2023-06-30' existing = {
  name: iotHubName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource keyVault 'Microsoft.KeyVault/vaults@2026-02-01' existing = {
  name: keyVaultName
}

resource iotHubEventsSecret 'Microsoft.KeyVault/vaults/secrets@2026-02-01' existing = {
  parent: keyVault
  name: iotHubEventsSecretName
}

resource provisioningKeysSecret 'Microsoft.KeyVault/vaults/secrets@2026-02-01' existing = {
  parent: keyVault
  name: provisioningKeysSecretName
}

resource slackWebhookSecret 'Microsoft.KeyVault/vaults/secrets@2026-02-01' existing = if (!empty(slackWebhookSecretName)) {
  parent: keyVault
  name: slackWebhookSecretName
}

// Host storage: blob, queue and table data roles (the Durable Functions Azure Storage provider needs all three).
resource hostStorageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in hostStorageRoleIds: {
    name: guid(hostStorage.id, principalId, roleId)
    scope: hostStorage
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]

// Archive storage: blob data only (no queues or tables there, no account management).
resource archiveStorageBlobContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(archiveStorage.id, principalId, storageBlobDataContributorRoleId)
  scope: archiveStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributorRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Cosmos DB: data-plane role, scoped to the app's database only.
resource cosmosDataContributor 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2025-10-15' = {
  parent: cosmos
  name: guid(cosmos.id, principalId, cosmosDataContributorRoleId)
  properties: {
    roleDefinitionId: '${cosmos.id}/sqlRoleDefinitions/${cosmosDataContributorRoleId}'
    principalId: principalId
    scope: '${cosmos.id}/dbs/${cosmosDatabaseName}'
  }
}

// Anomalies hub: receive only, scoped to the hub (not the namespace).
resource anomaliesHubReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(anomaliesHub.id, principalId, eventHubsDataReceiverRoleId)
  scope: anomaliesHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventHubsDataReceiverRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Replay hub: receive only, scoped to the hub. The app never sends there (only the operator does).
resource replayHub 'Microsoft.EventHub/namespaces/eventhubs@2026-01-01' existing = {
  parent: eventHubNamespace
  name: replayHubName
}

resource replayHubReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(replayHub.id, principalId, eventHubsDataReceiverRoleId)
  scope: replayHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventHubsDataReceiverRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// A custom role with exactly iotHubDataActions, assignable in this resource group only. Role names are unique per
// tenant, hence the hub's name in it. Creating it needs Microsoft.Authorization/roleDefinitions/write (Owner or
// User Access Administrator, as the README's prerequisites say).
resource iotHubDataRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, iotHubName, 'iot-backend-iothub-data')
  properties: {
    roleName: 'IoT backend IoT Hub data (${iotHubName})'
    description: 'Device identities, twins, jobs and direct-method invocation on the IoT backend\'s hub; nothing else.'
    type: 'customRole'
    assignableScopes: [
      resourceGroup().id
    ]
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: iotHubDataActions
        notDataActions: []
      }
    ]
  }
}

// IoT Hub service APIs (identity registry, twins, jobs) with Microsoft Entra ID. Not here: a data role for the
// built-in Event Hub-compatible endpoint, which does not accept Microsoft Entra ID (see main.bicep); its
// connection string is read from Key Vault instead (below).
resource iotHubData 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(iotHub.id, principalId, iotHubDataRole.id)
  scope: iotHub
  properties: {
    roleDefinitionId: iotHubDataRole.id
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Application Insights: publish telemetry with the managed identity (local auth is disabled on the component).
resource appInsightsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, monitoringMetricsPublisherRoleId)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisherRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Key Vault: read the one secret the app needs (the IoT Hub events connection string), not the whole vault.
resource iotHubEventsSecretReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(iotHubEventsSecret.id, principalId, keyVaultSecretsUserRoleId)
  scope: iotHubEventsSecret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUserRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Key Vault: read the key encrypting generated device keys at rest (Provisioning__KeysEncryptionKey), that secret only.
resource provisioningKeysSecretReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(provisioningKeysSecret.id, principalId, keyVaultSecretsUserRoleId)
  scope: provisioningKeysSecret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUserRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Key Vault: read the Slack webhook (SlackWebhookUrl), that secret only, when one is configured.
resource slackWebhookSecretReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(slackWebhookSecretName)) {
  name: guid(slackWebhookSecret.id, principalId, keyVaultSecretsUserRoleId)
  scope: slackWebhookSecret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUserRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
