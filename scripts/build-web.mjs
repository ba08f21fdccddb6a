// Builds the city dashboard (web/) into dist/web/: type-checks it, bundles and minifies it
// with esbuild into content-hashed assets, writes index.html naming them, and stores a
// Brotli and a gzip copy beside each file so the gateway serves them without compressing
// on every request. Everything the page uses ends up in dist/web: it loads nothing else.
//
//   node scripts/build-web.mjs        # run by `npm run build` (postbuild) and the test setup
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, join, relative } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const root = join(import.meta.dirname, '..');
const src = join(root, 'web');
const out = join(root, 'dist', 'web');
const require = createRequire(import.meta.url);

// esbuild strips types without checking them: check first, as tsc does for the server.
execFileSync(
  process.execPath,
  [require.resolve('typescript/bin/tsc'), '-p', join(src, 'tsconfig.json')],
  {
    stdio: 'inherit',
  },
);

rmSync(out, { recursive: true, force: true });
const result = await build({
  absWorkingDir: root,
  entryPoints: { app: join(src, 'src', 'main.ts'), styles: join(src, 'styles.css') },
  outdir: join(out, 'assets'),
  entryNames: '[name]-[hash]',
  bundle: true,
  minify: true,
  format: 'esm',
  // Browsers of the last few years; nothing older is on an operator's desk.
  target: ['chrome109', 'edge109', 'firefox115', 'safari16'],
  metafile: true,
  logLevel: 'warning',
});

const asset = (entry) => {
  const file = Object.keys(result.metafile.outputs).find(
    (o) => result.metafile.outputs[o].entryPoint?.endsWith(entry) && !o.endsWith('.map'),
  );
  if (!file) throw new Error(`esbuild wrote no output for ${entry}`);
  return '/' + relative(out, join(root, file)).split('\\').join('/');
};

const favicon = readFileSync(join(src, 'favicon.svg'));
const faviconName = `favicon-${createHash('sha256').update(favicon).digest('hex').slice(0, 8)}.svg`;
writeFileSync(join(out, 'assets', faviconName), favicon);

const names = {
  js: asset('web/src/main.ts'),
  css: asset('web/styles.css'),
  favicon: `/assets/${faviconName}`,
};
const html = readFileSync(join(src, 'index.html'), 'utf8').replace(/\{\{(\w+)\}\}/g, (m, k) => {
  if (!(k in names)) throw new Error(`web/index.html: unknown placeholder ${m}`);
  return names[k];
});
writeFileSync(join(out, 'index.html'), html);

const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else files.push(p);
  }
};
walk(out);
let raw = 0;
let br = 0;
for (const file of files) {
  const body = readFileSync(file);
  const b = brotliCompressSync(body, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: 11,
      [constants.BROTLI_PARAM_SIZE_HINT]: body.length,
    },
  });
  writeFileSync(`${file}.br`, b);
  writeFileSync(`${file}.gz`, gzipSync(body, { level: 9 }));
  raw += body.length;
  br += b.length;
  console.log(
    `  dist/web/${relative(out, file).padEnd(34)} ${String(body.length).padStart(7)} B  (${b.length} B brotli)`,
  );
}
console.log(
  `dashboard built into dist/web: ${files.length} files, ${raw} B (${br} B with Brotli) — ${basename(names.js)}`,
);
