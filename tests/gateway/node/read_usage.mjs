// Reads the gateway's OpenAI usage and costs endpoints with the official openai Node SDK, unchanged,
// for tests/gateway/dialects/test_openai_node.py.
//
// stdin: {"base_url", "key", "calls": [{"name": "completions" | ... | "costs", "params": {...}}]}
// stdout: one array of pages per call, every page of it (following next_page), as the SDK returned them.
//
// Each endpoint is read through the SDK's own method (client.admin.organization.usage.<name>), which sends
// the parameters as the SDK does (arrays as k[]=a). An SDK without a method for an endpoint the Python SDK
// has (decisions: openai 7.59.0 has none) reads it with the SDK's generic client.get, which sends the same.

import OpenAI from "openai";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const input = JSON.parse(Buffer.concat(chunks).toString("utf8"));

const client = new OpenAI({ apiKey: input.key, adminAPIKey: input.key, baseURL: input.base_url, maxRetries: 0 });
const usage = client.admin.organization.usage;
const camel = (name) => name.replace(/_([a-z])/g, (_, c) => c.toUpperCase());

function read(name, query) {
  const method = usage[camel(name)];
  if (typeof method === "function") return method.call(usage, query);
  return client.get(`/organization/usage/${name}`, { query });
}

const out = [];
for (const call of input.calls) {
  const pages = [];
  let query = { ...call.params };
  for (;;) {
    const page = await read(call.name, query);
    pages.push(page);
    if (!page.has_more) break;
    query = { ...call.params, page: page.next_page };
  }
  out.push(pages);
}
const methods = Object.getOwnPropertyNames(Object.getPrototypeOf(usage)).filter((m) => m !== "constructor");
process.stdout.write(JSON.stringify({ methods, results: out }));
