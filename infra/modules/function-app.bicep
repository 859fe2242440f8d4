// Flex Consumption plan and the function app (Node 22, system-assigned managed identity). App settings are
// written by function-app-settings.bicep once the site exists (PublicApiBaseUrl needs its host name).

param planName string
param appName string
param location string
param tags { *: string }

@description('Host storage account (deployment package container lives there).')
param hostStorageBlobEndpoint string
param deploymentContainerName string

// Cost: the largest number of instances Flex may scale to is the cost ceiling under load. The IoT Hub and
// anomalies triggers cannot use more instances than their partitions; HTTP and durable work use the rest.
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

// Cost: instance size multiplies the GB-second price; 2 GB covers the ingest batch (500 events) and durable work.
@allowed([2048, 4096])
param instanceMemoryMB int = 2048

// Cost: Flex Consumption bills executions and GB-seconds per instance, with no always-ready instances configured
// (no baseline charge; the first request after idle pays a cold start). One app per Flex plan.
resource plan 'Microsoft.Web/serverfarms@2025-03-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

// The function app: HTTP API, ingest and anomaly triggers, durable workflows. Runtime and deployment storage live
// in functionAppConfig (Flex Consumption rejects FUNCTIONS_WORKER_RUNTIME and similar app settings).
resource site 'Microsoft.Web/sites@2025-03-01' = {
  name: appName
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostStorageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      // Node 22: Azure Functions support for Node 20 ended 2026-04-30
      // (https://learn.microsoft.com/azure/azure-functions/functions-versions, language runtime support).
      // package.json engines and CI (.github/workflows/ci.yml) run 20 and 22; the local run works on both.
      runtime: {
        name: 'node'
        version: '22'
      }
    }
  }
}

// Basic-auth publishing (FTP and the SCM site's user/password) off: azd and the deploy workflow publish with
// Microsoft Entra tokens (https://learn.microsoft.com/azure/app-service/configure-basic-auth-disable).
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2025-03-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2025-03-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = site.name
output id string = site.id
output principalId string = site.identity.principalId
output defaultHostName string = site.properties.defaultHostName
