# faithd6 in a container. It must see the host's network to accept on the translation prefix
# and to install the local route:
#   docker run -d --network host --cap-add NET_ADMIN \
#     -v /etc/faithd6.yaml:/etc/faithd6.yaml:ro faithd6
FROM node:20-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm ci --ignore-scripts && npm run build

FROM node:20-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/faithd6
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts
COPY --from=build /src/dist ./dist
COPY bin ./bin
COPY etc/faithd6.yaml /etc/faithd6.yaml
VOLUME ["/etc/faithd6.yaml"]
ENTRYPOINT ["node", "/opt/faithd6/bin/faithd6"]
CMD ["run", "-c", "/etc/faithd6.yaml"]
