#!/usr/bin/env bash
# `npm run image`: builds sluice's image from the Dockerfile on this machine, which has no Docker engine and reaches no
# container registry (so `node:26-slim` cannot be pulled).
#
#   bash scripts/image.sh [build]     build localhost/sluice:<version>, or reuse it when nothing it is built from changed
#   bash scripts/image.sh name        the image built from the sources as they are: localhost/sluice:<version>-src.<hash>
#   bash scripts/image.sh run [--entrypoint PATH] ARGS…
#                                     that image's entrypoint (or PATH) with ARGS, as uid 1000 on a read-only root
#   bash scripts/image.sh podman ARGS… podman on the store the image is in (`podman images`, `podman save`, `podman push`)
#
# How:
#   1. A base image standing in for node:26-slim, assembled from files instead of pulled: the Node.js binary of the
#      `node` devDependency (the one every npm script runs on), the shared libraries `ldd` lists for it, npm (from the
#      npm registry, pinned below), /bin/sh and /usr/bin/env (Debian's dash and coreutils, for npm's scripts and the
#      `#!/usr/bin/env node` of tsc), and /etc/passwd with root and the `node` user (uid 1000) that the Dockerfile's
#      `USER node` names, as node:26-slim has. Tagged localhost/sluice-base:node-<node>-npm-<npm>-r<BASE_REVISION>.
#   2. The Dockerfile built unchanged with `--build-arg BASE=<that base>`, by podman (Debian's package, installed with
#      apt-get when missing) with `--isolation=chroot` (no daemon, no runc/crun; RUN steps share the host's network,
#      so the build stage's `npm ci` reaches the npm registry), `--pull=never` and `--layers`.
#   3. `run` starts a container, `podman --runtime runc run --read-only --user 1000:1000` (runc from Debian, installed
#      when missing: see podman_run for why runc and explicit rlimits); where no container can start (or with
#      SLUICE_IMAGE_RUN=chroot) it runs the entrypoint in a chroot of the image's root filesystem, bind-mounted
#      read-only in a private mount namespace, as uid 1000 (see chroot_run). SLUICE_IMAGE_RUN=podman forces a container.
#
# Everything lives under $SLUICE_CACHE (default ~/.cache/sluice)/image: the pinned npm tarball, and podman's own store
# (base image, the build's layer cache, the image; `bash scripts/image.sh podman system reset -f` empties it). The image
# is tagged twice: localhost/sluice:<version>, the latest build, and localhost/sluice:<version>-src.<hash>, where the
# hash covers everything it is built from (Dockerfile, .dockerignore, package files, tsconfigs, src/, crds/, the base).
# `build` reuses the image of the current hash, and `run` runs it, so two checkouts building different sources on one
# machine never run each other's image. The `npm ci` layer stays cached until package-lock.json changes.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd -P)

NPM_VERSION=11.19.1 # npm inside the base (node:26-slim ships the npm of its Node release)
BASE_REVISION=2     # raise when build_base changes what it puts in the base
# The Dockerfile's `USER node`, and the uid/gid the Deployment runs as (runAsUser/runAsGroup).
APP_USER=node APP_UID=1000 APP_GID=1000

CACHE="${SLUICE_CACHE:-$HOME/.cache/sluice}"
IMAGE_CACHE="$CACHE/image"
VERSION=$(node -p 'require("./package.json").version')
IMAGE="localhost/sluice:$VERSION"
NODE_BIN="$REPO/node_modules/node/bin/node"

say() { printf '[image] %s\n' "$*" >&2; }
die() {
  printf '[image] ERROR: %s\n' "$*" >&2
  exit 1
}
now_ms() { date +%s%3N; }
TMPS=() # removed on exit, however the script ends
trap 'rm -rf "${TMPS[@]}"' EXIT
since() { printf '%d.%d s' $((($(now_ms) - $1) / 1000)) $(((($(now_ms) - $1) % 1000) / 100)); }

# --- podman -------------------------------------------------------------------------------------------------------

install_packages() {
  [ "$(id -u)" -eq 0 ] || die "$* not installed and this is not root: run 'sudo apt-get install -y $*' first"
  command -v apt-get > /dev/null || die "$* not installed and there is no apt-get: install $* yourself"
  say "installing Debian's $* with apt-get"
  local t0 log
  t0=$(now_ms)
  log=$(mktemp) && TMPS+=("$log")
  DEBIAN_FRONTEND=noninteractive apt-get update -qq > "$log" 2>&1 || {
    cat "$log" >&2
    die "apt-get update failed: check the machine's Debian sources (/etc/apt/sources.list*)"
  }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" > "$log" 2>&1 || {
    cat "$log" >&2
    die "apt-get install $* failed (its output is above)"
  }
  say "$* installed ($(since "$t0"))"
}

# podman builds; runc runs containers (see podman_run). One apt-get for both.
ensure_podman() {
  if ! command -v podman > /dev/null || ! command -v runc > /dev/null; then install_packages podman runc; fi
}

# overlay when the kernel lets us mount it here (root on ext4/xfs), else vfs (always works, copies every layer whole).
# Each driver has its own store: a store cannot change driver.
storage_driver() {
  if [ -n "${SLUICE_IMAGE_STORAGE_DRIVER:-}" ]; then
    echo "$SLUICE_IMAGE_STORAGE_DRIVER"
    return
  fi
  local probe
  probe=$(mktemp -d "$IMAGE_CACHE/.overlay-probe.XXXXXX")
  mkdir -p "$probe"/{lower,upper,work,merged}
  if unshare --mount sh -c "mount -t overlay overlay -o lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work \
      $probe/merged" 2> /dev/null; then
    echo overlay
  else
    echo vfs
  fi
  rm -rf "$probe"
}

setup_podman() {
  mkdir -p "$IMAGE_CACHE"
  ensure_podman
  DRIVER=$(storage_driver)
  # The run root holds locks and mount bookkeeping: on tmpfs where there is one, so a reboot cannot leave it stale.
  local runroot="/run/sluice-podman-$DRIVER"
  [ -w /run ] || runroot="$IMAGE_CACHE/run-$DRIVER"
  PODMAN=(podman --root "$IMAGE_CACHE/storage-$DRIVER" --runroot "$runroot" --storage-driver "$DRIVER"
    --cgroup-manager cgroupfs --events-backend file)
}

# --- the base -----------------------------------------------------------------------------------------------------

# Copies $1 (a file on this machine) to the same path under the root filesystem $2, and every shared library ldd
# lists for it. Debian merges /usr (/lib → usr/lib), so libraries go under usr/ and the root gets the same symlinks.
copy_with_libs() {
  local file=$1 root=$2 dest=${3:-$1} lib
  install -D -m 0755 "$file" "$root/${dest#/}"
  while read -r lib; do
    lib=${lib#/usr}
    [ -e "$root/usr$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$root/usr$lib"
  done < <(ldd "$file" | grep -oE '/[^ ]+\.so[^ ]*' | sort -u)
}

# BASE (the base's name), NODE_VERSION and SRC_IMAGE (the image of the sources as they are).
names() {
  [ -x "$NODE_BIN" ] || die "$NODE_BIN is missing: run 'npm ci' first (the node devDependency brings Node.js 26)"
  NODE_VERSION=$("$NODE_BIN" --version)
  NODE_VERSION=${NODE_VERSION#v}
  BASE="localhost/sluice-base:node-$NODE_VERSION-npm-$NPM_VERSION-r$BASE_REVISION"
  SRC_IMAGE="$IMAGE-src.$(source_hash)"
}

build_base() {
  local node_version=$NODE_VERSION
  if "${PODMAN[@]}" image exists "$BASE"; then
    say "base $BASE: cached"
    return
  fi
  local t0 root tgz="$IMAGE_CACHE/npm-$NPM_VERSION.tgz"
  t0=$(now_ms)
  say "assembling base $BASE (Node.js $node_version from node_modules/node, npm $NPM_VERSION, dash, env)"
  if [ ! -s "$tgz" ]; then
    local tmp
    tmp=$(mktemp -d) && TMPS+=("$tmp")
    (cd "$tmp" && npm pack "npm@$NPM_VERSION" --silent > /dev/null) ||
      die "could not fetch npm $NPM_VERSION from the npm registry (npm pack npm@$NPM_VERSION): check the network"
    mv "$tmp/npm-$NPM_VERSION.tgz" "$tgz"
  fi
  root=$(mktemp -d) && TMPS+=("$root")
  chmod 0755 "$root" # the image's / (mktemp made it 0700: uid 1000 could not reach /usr/local/bin/node under vfs)
  mkdir -p "$root"/usr/{bin,sbin,lib,lib64,local/etc} "$root"/{etc,proc,sys,dev,run,root,home/$APP_USER,app}
  ln -s usr/bin "$root/bin"
  ln -s usr/sbin "$root/sbin"
  ln -s usr/lib "$root/lib"
  ln -s usr/lib64 "$root/lib64"
  install -d -m 1777 "$root/tmp" "$root/var/tmp"
  copy_with_libs "$NODE_BIN" "$root" /usr/local/bin/node
  copy_with_libs "$(readlink -f /bin/sh)" "$root" /usr/bin/sh
  copy_with_libs /usr/bin/env "$root"
  mkdir -p "$root/usr/local/lib/node_modules/npm"
  tar -xzf "$tgz" -C "$root/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
  printf 'root:x:0:0:root:/root:/bin/sh\n%s:x:%d:%d::/home/%s:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' \
    "$APP_USER" "$APP_UID" "$APP_GID" "$APP_USER" > "$root/etc/passwd"
  printf 'root:x:0:\n%s:x:%d:\nnogroup:x:65534:\n' "$APP_USER" "$APP_GID" > "$root/etc/group"
  printf 'hosts: files dns\n' > "$root/etc/nsswitch.conf"
  chmod 0700 "$root/root"
  chown "$APP_UID:$APP_GID" "$root/home/$APP_USER"
  tar -C "$root" --numeric-owner -cf - . |
    "${PODMAN[@]}" import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change "ENV NODE_VERSION=$node_version" \
      --change 'CMD ["node"]' \
      --message "sluice's stand-in for node:26-slim (scripts/image.sh)" \
      - "$BASE" > /dev/null || die "podman import of the base failed (see the message above)"
  say "base $BASE: built ($(since "$t0"))"
}

# --- the image ----------------------------------------------------------------------------------------------------

# The base and every file of the build context (.dockerignore lets in exactly these), as they are on disk: the label
# that lets `build` reuse an image.
source_hash() {
  {
    printf '%s\n' "$BASE"
    find Dockerfile .dockerignore package.json package-lock.json tsconfig.json tsconfig.build.json src crds -type f \
      -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-16
}

build() {
  names
  setup_podman
  build_base
  if "${PODMAN[@]}" image exists "$SRC_IMAGE"; then
    "${PODMAN[@]}" tag "$SRC_IMAGE" "$IMAGE"
    say "$SRC_IMAGE: cached (built from the same sources), tagged $IMAGE"
    return
  fi
  local t0 npmconf
  t0=$(now_ms)
  say "building $IMAGE from the Dockerfile on $BASE (podman build --isolation=chroot, storage $DRIVER)"
  # The build stage's npm gets this machine's registry and CA file (a TLS-inspecting proxy's CA, where there is one),
  # as npm's global config mounted at the base's empty /usr/local/etc for the RUN steps only: nothing of it enters a
  # layer or the image.
  npmconf=$(mktemp -d) && TMPS+=("$npmconf")
  printf 'registry=%s\nupdate-notifier=false\n' "$(npm config get registry)" > "$npmconf/npmrc"
  # What this machine trusts beyond Node's own roots: NODE_EXTRA_CA_CERTS, npm's cafile (the machine's npm: its global
  # config is found relative to the node running it, so not node_modules' Node 26) and the system's CA bundle.
  local extra=() f
  for f in "${NODE_EXTRA_CA_CERTS:-}" "$(PATH=${PATH//$REPO\/node_modules\/.bin:/} npm config get cafile 2> /dev/null)" \
    "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
    [ -n "$f" ] && [ "$f" != null ] && [ -f "$f" ] && [[ " ${extra[*]} " != *" $f "* ]] && extra+=("$f")
  done
  if [ ${#extra[@]} -gt 0 ]; then
    say "npm in the build trusts Node's roots plus ${extra[*]}"
    { node -p 'require("node:tls").rootCertificates.join("\n")' && cat "${extra[@]}"; } > "$npmconf/ca.crt"
    printf 'cafile=/usr/local/etc/ca.crt\n' >> "$npmconf/npmrc"
  fi
  chmod -R a+rX "$npmconf"
  "${PODMAN[@]}" build --isolation=chroot --pull=never --layers \
    --volume "$npmconf:/usr/local/etc:ro" \
    --build-arg "BASE=$BASE" -t "$SRC_IMAGE" -t "$IMAGE" -f Dockerfile . >&2 ||
    die "podman build failed (its output is above); the layers before the failing step are cached for the next try"
  say "$SRC_IMAGE: built ($(since "$t0")), $("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE" |
    awk '{ printf "%d MB", $1 / 1e6 }'), tagged $IMAGE"
  # Keep the build stage tagged (every step a cache hit: a second or two), so that dropping the untagged images of
  # earlier builds keeps its `npm ci` layer: the next build after a change to src/ then skips `npm ci`.
  "${PODMAN[@]}" build --isolation=chroot --pull=never --layers --quiet --target build \
    --volume "$npmconf:/usr/local/etc:ro" --build-arg "BASE=$BASE" -t "localhost/sluice-build:$VERSION" -f Dockerfile . \
    > /dev/null || die "tagging the build stage failed: run 'bash scripts/image.sh podman build --target build .'"
  # The images of the three latest sources stay (another checkout may run one); older ones go, with their layers.
  "${PODMAN[@]}" images --format '{{.CreatedAt}}{{"\t"}}{{.Repository}}:{{.Tag}}' localhost/sluice | LC_ALL=C sort -r |
    cut -f2 | grep -F -- "localhost/sluice:$VERSION-src." | tail -n +4 | xargs -r "${PODMAN[@]}" untag > /dev/null || true
  "${PODMAN[@]}" image prune -f > /dev/null || true
}

# --- run ----------------------------------------------------------------------------------------------------------

# `podman run` as the Deployment runs the pod: uid/gid 1000, read-only root with no tmpfs anywhere (the Deployment
# mounts only the certificate), no capabilities, no privilege escalation, and no network (version and help need none).
# runc, not Debian's default crun, which refuses this machine's hybrid cgroup v1 layout ("cgroups in hybrid mode not
# supported"). The rlimits are explicit and below this process's own: podman's defaults (and even "host", or the
# current hard limits) make runc's setrlimit fail here with EPERM.
podman_run() {
  local nofile=4096 nproc=4096
  if [ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -lt $nofile ]; then nofile=$(ulimit -Sn); fi
  if [ "$(ulimit -Su)" != unlimited ] && [ "$(ulimit -Su)" -lt $nproc ]; then nproc=$(ulimit -Su); fi
  "${PODMAN[@]}" --runtime runc run --rm --network=none --read-only --read-only-tmpfs=false \
    --user "$APP_UID:$APP_GID" --cap-drop=all --security-opt=no-new-privileges \
    --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc" "$@"
}

# The fallback where no container can start: the entrypoint in a chroot of the image's root filesystem, as a container
# would run it. In a private mount namespace the image's root is bind-mounted read-only at a mount point of its own,
# with /proc and a read-only /dev holding the five devices a container gets (null, zero, full, random, urandom); then
# `unshare --root --wd --setuid --setgid` enters it as uid/gid 1000 with only the image's environment and the user's
# HOME from the image's /etc/passwd (what podman gives a container too).
chroot_run() {
  local entrypoint=("$ENTRYPOINT_OVERRIDE")
  if [ -z "$ENTRYPOINT_OVERRIDE" ]; then
    mapfile -t entrypoint < <("${PODMAN[@]}" image inspect --format '{{range .Config.Entrypoint}}{{println .}}{{end}}' "$SRC_IMAGE" | sed '/^$/d')
  fi
  local root workdir env home mnt status=0
  workdir=$("${PODMAN[@]}" image inspect --format '{{.Config.WorkingDir}}' "$SRC_IMAGE")
  mapfile -t env < <("${PODMAN[@]}" image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$SRC_IMAGE" | sed '/^$/d')
  root=$("${PODMAN[@]}" image mount "$SRC_IMAGE")
  home=$(awk -F: -v uid="$APP_UID" '$3 == uid { print $6; exit }' "$root/etc/passwd")
  mnt=$(mktemp -d) && TMPS+=("$mnt")
  # shellcheck disable=SC2016 # $1 and $2 are the inner shell's
  env -i "${env[@]}" HOME="${home:-/}" unshare --mount --pid --fork --propagation private sh -c '
      set -e
      mount --bind "$1" "$2" && mount -o remount,bind,ro "$2"
      mount -t proc proc "$2/proc"
      mount -t tmpfs -o nosuid,mode=0755 tmpfs "$2/dev"
      for d in null zero full random urandom; do touch "$2/dev/$d" && mount --bind "/dev/$d" "$2/dev/$d"; done
      mount -o remount,ro "$2/dev"
      shift 2
      exec env -u PWD "$@"' sh "$root" "$mnt" \
    unshare --root="$mnt" --wd="${workdir:-/}" --setgid="$APP_GID" --setuid="$APP_UID" -- \
    "${entrypoint[@]}" "${ARGS[@]}" || status=$?
  "${PODMAN[@]}" image unmount "$SRC_IMAGE" > /dev/null || true
  return "$status"
}

# run [--entrypoint PATH] [--] ARGS…: the image's entrypoint (or PATH) with ARGS; its stdout is theirs alone.
run() {
  ENTRYPOINT_OVERRIDE=
  if [ "${1:-}" = --entrypoint ]; then
    [ $# -ge 2 ] || die "--entrypoint needs a path"
    ENTRYPOINT_OVERRIDE=$2
    shift 2
  fi
  [ "${1:-}" = -- ] && shift
  ARGS=("$@")
  names
  setup_podman
  "${PODMAN[@]}" image exists "$SRC_IMAGE" || die "no image of the sources as they are ($SRC_IMAGE): run 'npm run image' first"
  local how=${SLUICE_IMAGE_RUN:-auto} entry=()
  [ -n "$ENTRYPOINT_OVERRIDE" ] && entry=(--entrypoint "$ENTRYPOINT_OVERRIDE")
  case "$how" in
    auto)
      if podman_run --entrypoint /usr/local/bin/node "$SRC_IMAGE" -e '' > /dev/null 2>&1; then how=podman; else how=chroot; fi
      ;;
    podman | chroot) ;;
    *) die "SLUICE_IMAGE_RUN must be auto, podman or chroot, not '$how'" ;;
  esac
  if [ "$how" = podman ]; then
    say "podman run --read-only --user $APP_UID:$APP_GID $SRC_IMAGE ${ENTRYPOINT_OVERRIDE:+(entrypoint $ENTRYPOINT_OVERRIDE) }${ARGS[*]}"
    podman_run "${entry[@]}" "$SRC_IMAGE" "${ARGS[@]}"
  else
    say "no container can start here (SLUICE_IMAGE_RUN=$how): chroot of $SRC_IMAGE, read-only, uid $APP_UID: ${ARGS[*]}"
    chroot_run
  fi
}

case "${1:-build}" in
  build) build ;;
  name)
    names
    echo "$SRC_IMAGE"
    ;;
  run)
    shift
    run "$@"
    ;;
  podman)
    shift
    setup_podman
    exec "${PODMAN[@]}" "$@"
    ;;
  *) die "unknown command '$1': use build (the default), name, run ARGS… or podman ARGS…" ;;
esac
