# faithd6 in a container. It must share the host's network namespace to accept on the
# translation prefix and to install its local route:
#
#   docker build -t faithd6 .
#   docker run -d --name faithd6 --network host --cap-add NET_ADMIN \
#     -v /etc/faithd6.yaml:/etc/faithd6.yaml:ro faithd6
#
# The process runs as the unprivileged user faithd6. The two privileges it needs come from
# file capabilities, and only within what --cap-add allows: `ip` may change routes
# (route: manage), node may bind ports below 1024. Without --cap-add NET_ADMIN, use
# `route: external` and install the route on the host (`faithd6 route up`).

# Build stage: dev dependencies (TypeScript, node-gyp), then compile: the TypeScript, and the
# native data plane's addon with the compiler this stage installs (the image's Node headers).
FROM node:24-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ make python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY native/binding.gyp ./native/binding.gyp
COPY native/src ./native/src
RUN npm run build:native -- --nodedir=/usr/local
RUN npm run build

# Run stage: production dependencies only, the compiled code and addon, no compiler.
FROM node:24-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 libcap2-bin \
 && rm -rf /var/lib/apt/lists/* \
 && setcap cap_net_admin+ep /usr/bin/ip \
 && setcap cap_net_bind_service+ep "$(readlink -f /usr/local/bin/node)" \
 && useradd --system --no-create-home --shell /usr/sbin/nologin faithd6 \
 && install -d -o faithd6 -g faithd6 -m 0750 /run/faithd6
WORKDIR /opt/faithd6
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund
COPY --from=build /src/dist ./dist
COPY --from=build /src/native/build/Release/faithd6.node ./native/build/Release/faithd6.node
COPY bin ./bin
COPY etc/faithd6.yaml etc/faithd6.schema.json /etc/
VOLUME ["/etc/faithd6.yaml"]
USER faithd6
ENTRYPOINT ["node", "/opt/faithd6/bin/faithd6"]
CMD ["run", "-c", "/etc/faithd6.yaml"]
