// Log Analytics workspace and workspace-based Application Insights for the function app.

param logAnalyticsName string
param appInsightsName string
param location string
param tags { *: string }

// Cost: pay-as-you-go per GB ingested; 30 days of retention is included in the price. host.json keeps sampling on
// (requests and exceptions excluded), which is what keeps ingestion low under telemetry load.
resource workspace 'Microsoft.OperationalInsights/workspaces@2025-07-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
  }
}

// Application Insights: the Functions host's requests, traces and exceptions. Local auth (instrumentation key
// alone) is disabled: the host sends with its managed identity (APPLICATIONINSIGHTS_AUTHENTICATION_STRING and
// the Monitoring Metrics Publisher role).
resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    IngestionMode: 'LogAnalytics'
    DisableLocalAuth: true
  }
}

output appInsightsName string = appInsights.name
output appInsightsConnectionString string = appInsights.properties.ConnectionString
output logAnalyticsWorkspaceId string = workspace.id
