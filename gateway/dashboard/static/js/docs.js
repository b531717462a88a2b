// The API reference: Swagger UI over the gateway's own /openapi.json. "Authorize" keeps the key in
// this page only (persistAuthorization off: nothing written to localStorage).
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  docExpansion: "none",
  defaultModelsExpandDepth: 0,
  displayRequestDuration: true,
  tryItOutEnabled: false,
  persistAuthorization: false,
  validatorUrl: null,
});
