// Recognizes the material in a photo and searches the sample catalog with kai, in this
// process (the default) or through kai-server when USE_MCP_SERVER=true. Build it once the
// package in kai-node is built (scripts/test builds it), then run it from the repository
// root:
//
//   (cd examples/node && npm install && npm run build)
//   node examples/node/dist/quickstart.js [PHOTO]
import { createKai, type KaiError, RemoteKai } from 'kai'

async function main(): Promise<void> {
  const photo = process.argv[2] ?? 'examples/queries/altered-red-brown-plank-floor.jpg'
  const kai = await createKai()
  try {
    // kai-server imports its own catalog, so only an empty local store needs one.
    if (!(kai instanceof RemoteKai) && (await kai.catalogSummary()).materials === 0) {
      const report = await kai.importCatalog('examples/catalog')
      console.log(`imported ${report.created.length} materials from examples/catalog`)
    }

    const recognition = await kai.recognize(photo, { topK: 3 })
    const best = recognition.classes[0]
    if (best !== undefined) {
      console.log(`${photo}: ${best.materialType} (${(best.confidence * 100).toFixed(1)} %)`)
    }
    for (const match of recognition.materials) {
      console.log(`  ${match.id.padEnd(32)} ${match.score.toFixed(3)}`)
    }

    const { results } = await kai.searchMaterials({ query: 'weathered wooden planks', topK: 3 })
    console.log('search "weathered wooden planks":')
    for (const hit of results) {
      console.log(`  ${hit.id.padEnd(32)} ${hit.materialType}`)
    }
  } finally {
    await kai.close()
  }
}

main().catch((err: unknown) => {
  const { code, message } = err as Partial<KaiError>
  console.error(`error: ${message ?? String(err)}${code === undefined ? '' : ` (${code})`}`)
  process.exitCode = 1
})
