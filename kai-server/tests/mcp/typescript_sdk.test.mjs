// kai-server's /mcp endpoint driven by the official TypeScript MCP SDKs: the 1.x
// `@modelcontextprotocol/sdk`, which speaks the revisions with the initialize handshake,
// and the 2.x `@modelcontextprotocol/client`, pinned to revision 2026-07-28 and also run
// with its default handshake.
//
// scripts/test_mcp.sh installs both packages outside the clone, starts the server over the
// sample catalog, and sets KAI_MCP_URL and KAI_MCP_NODE_MODULES.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const url = process.env.KAI_MCP_URL
const nodeModules = process.env.KAI_MCP_NODE_MODULES
const skip = url && nodeModules ? false : 'KAI_MCP_URL is unset; run scripts/test_mcp.sh'

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
const photo = (name) => readFileSync(join(repo, 'examples', 'queries', name)).toString('base64')

const TOOLS = [
  'assess_image_quality',
  'embed_text',
  'get_parameters',
  'get_reconstruction_file',
  'get_reconstruction_job',
  'recognize_material',
  'search_materials',
  'submit_reconstruction',
  'suggest_parameters',
]

// The packages live outside the clone, so they are resolved from their folder.
function sdks() {
  const require = createRequire(join(nodeModules, 'package.json'))
  const v1 = require('@modelcontextprotocol/sdk/client/index.js')
  const v1Http = require('@modelcontextprotocol/sdk/client/streamableHttp.js')
  const v2 = require('@modelcontextprotocol/client')
  return {
    'sdk 1.x (handshake)': {
      protocol: '2025-11-25',
      connect: () => [
        new v1.Client({ name: 'kai-tests', version: '0' }),
        new v1Http.StreamableHTTPClientTransport(new URL(url)),
      ],
    },
    'client 2.x pinned to 2026-07-28': {
      protocol: '2026-07-28',
      connect: () => [
        new v2.Client(
          { name: 'kai-tests', version: '0' },
          { versionNegotiation: { mode: { pin: '2026-07-28' } } },
        ),
        new v2.StreamableHTTPClientTransport(new URL(url)),
      ],
    },
    'client 2.x (handshake)': {
      protocol: '2025-11-25',
      connect: () => [
        new v2.Client({ name: 'kai-tests', version: '0' }),
        new v2.StreamableHTTPClientTransport(new URL(url)),
      ],
    },
  }
}

// Calls a tool that must succeed and returns its structured output, after checking that
// the text content contains the same JSON. The SDKs check the output against its schema.
async function call(client, name, args) {
  const result = await client.callTool({ name, arguments: args })
  assert.notEqual(result.isError, true, `${name}: ${result.content?.[0]?.text}`)
  assert.ok(result.structuredContent, `${name} returned no structured content`)
  assert.deepEqual(JSON.parse(result.content[0].text), result.structuredContent)
  return result.structuredContent
}

// Calls a tool that must fail and returns its error message.
async function toolError(client, name, args) {
  const result = await client.callTool({ name, arguments: args })
  assert.equal(result.isError, true, `${name} ${JSON.stringify(args)} succeeded`)
  assert.equal(result.structuredContent, undefined)
  return result.content[0].text
}

for (const [label, sdk] of Object.entries(skip ? {} : sdks())) {
  describe(label, () => {
    let client
    let transport

    before(async () => {
      ;[client, transport] = sdk.connect()
      await client.connect(transport)
    })

    after(async () => {
      await client.close()
    })

    test('reports kai-server and the negotiated revision', () => {
      assert.equal(client.getServerVersion().name, 'kai-server')
      assert.ok(client.getServerVersion().version)
      const negotiated = client.getNegotiatedProtocolVersion?.() ?? transport.protocolVersion
      assert.equal(negotiated, sdk.protocol)
      assert.match(client.getInstructions() ?? '', /recognize_material/)
    })

    test('lists eight tools with input and output schemas', async () => {
      const { tools } = await client.listTools()
      assert.deepEqual(tools.map((t) => t.name).sort(), TOOLS)
      for (const tool of tools) {
        assert.equal(tool.inputSchema.type, 'object', tool.name)
        assert.equal(tool.outputSchema.type, 'object', tool.name)
      }
    })

    test('recognizes a photo of tiles', async () => {
      const output = await call(client, 'recognize_material', {
        imageBase64: photo('altered-lime-green-glazed-tiles.jpg'),
        hint: 'glazed ceramic tiles',
      })
      assert.equal(output.classes[0].materialType, 'tile')
      assert.equal(output.materials.length, 5)
    })

    test('searches by words and by photo', async () => {
      const byText = await call(client, 'search_materials', { query: 'oak', topK: 3 })
      assert.equal(byText.results[0].materialType, 'wood')
      const byPhoto = await call(client, 'search_materials', {
        imageBase64: photo('altered-perforated-steel-sheet.jpg'),
        topK: 1,
      })
      assert.equal(byPhoto.results[0].materialType, 'metal')
      const paged = await call(client, 'search_materials', { query: 'oak', topK: 2, offset: 1 })
      assert.deepEqual(paged.results[0].id, byText.results[1].id)
    })

    test('embeds texts', async () => {
      const output = await call(client, 'embed_text', { texts: ['terrazzo floor'] })
      assert.equal(output.dimension, 384)
      assert.equal(output.vectors[0].length, 384)
    })

    test('assesses image quality', async () => {
      const output = await call(client, 'assess_image_quality', {
        imageBase64: photo('heldout-weathered-plank.jpg'),
      })
      assert.equal(typeof output.passed, 'boolean')
      assert.ok(output.width > 0)
      assert.ok(output.height > 0)
    })

    test('gets and suggests parameters', async () => {
      const set = await call(client, 'get_parameters', { name: 'premium' })
      assert.equal(set.values['recognition.top_k'], 3)
      const suggestion = await call(client, 'suggest_parameters', {
        materialId: 'olive-stained-planks',
        metric: 'score',
      })
      assert.equal(suggestion.metric, 'score')
      assert.ok(suggestion.set.name)
    })

    test('submits a reconstruction and reads its status', async () => {
      const names = ['heldout-grey-brick-wall.jpg', 'altered-perforated-steel-sheet.jpg']
      const images = names.map((name) => ({ name, data: photo(name) }))
      const job = await call(client, 'submit_reconstruction', { images })
      assert.ok(['queued', 'running'].includes(job.status), job.status)
      const read = await call(client, 'get_reconstruction_job', { id: job.id })
      assert.equal(read.id, job.id)
      assert.equal(read.createdAt, job.createdAt)
      assert.ok(['queued', 'running', 'succeeded', 'failed'].includes(read.status), read.status)
      assert.match(await toolError(client, 'get_reconstruction_job', { id: 'nope' }), /not found/)
    })

    test('returns tool errors for invalid calls and keeps serving', async () => {
      const notBase64 = { imageBase64: 'not base64 at all!' }
      assert.match(await toolError(client, 'assess_image_quality', notBase64), /imageBase64/)
      assert.match(await toolError(client, 'embed_text', { texts: 'oak' }), /texts/)
      const unknownVersion = { name: 'standard', version: 999 }
      assert.match(await toolError(client, 'get_parameters', unknownVersion), /999/)
      assert.match(await toolError(client, 'search_materials', { topK: 2 }), /query/)
      const output = await call(client, 'search_materials', { query: 'carpet' })
      assert.equal(output.results[0].materialType, 'carpet')
    })
  })
}

test('the MCP clients are installed', { skip }, () => {
  assert.ok(Object.keys(sdks()).length === 3)
})
