using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using PgFirst.Testing;

namespace WebApp.Tests;

/// <summary>
/// The demo app in process on the test's schema (and its own Redis key prefix), with settings per test.
/// </summary>
internal static class DemoApp
{
    public static WebApplicationFactory<Program> Create(
        PostgresServer postgres,
        RedisServer redis,
        string schema,
        string? backend = null,
        IReadOnlyDictionary<string, string?>? settings = null,
        string? connectionString = null) =>
        new WebApplicationFactory<Program>().WithWebHostBuilder(web =>
        {
            web.UseSetting("ConnectionStrings:Postgres", connectionString ?? postgres.ConnectionString);
            web.UseSetting("ConnectionStrings:Redis", redis.Configuration);
            web.UseSetting("PgFirst:SchemaName", schema);
            web.UseSetting("PgFirst:Redis:KeyPrefix", schema + ":");
            web.UseSetting("PgFirst:Maintenance:Enabled", "false");
            web.UseSetting("Logging:LogLevel:Default", "Warning");
            web.UseSetting("Logging:LogLevel:Microsoft.AspNetCore.DataProtection", "Error");
            web.UseSetting("PgQueue:PollInterval", "00:00:00.200");
            if (backend is not null)
            {
                web.UseSetting("PgFirst:Backend", backend);
            }

            foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
            {
                web.UseSetting(key, value);
            }
        });

    /// <summary>A browser-like client: keeps cookies, does not follow redirects (tests assert them).</summary>
    public static DemoClient Client(this WebApplicationFactory<Program> app, string? userAgent = null)
    {
        var client = app.CreateClient(new WebApplicationFactoryClientOptions { AllowAutoRedirect = false });
        client.DefaultRequestHeaders.UserAgent.ParseAdd(userAgent ?? "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0 Safari/537.36");
        return new DemoClient(client);
    }
}

internal sealed partial class DemoClient(HttpClient http) : IDisposable
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    public HttpClient Http { get; } = http;

    public void Dispose() => Http.Dispose();

    public async Task<(HttpStatusCode Status, string Body)> GetAsync(string path)
    {
        using var response = await Http.GetAsync(path, Token);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(Token));
    }

    public async Task<string> GetPageAsync(string path)
    {
        var (status, body) = await GetAsync(path);
        Assert.True(status == HttpStatusCode.OK, $"GET {path}: {(int)status}\n{body}");
        return body;
    }

    public async Task<JsonElement> GetJsonAsync(string path)
    {
        var (status, body) = await GetAsync(path);
        Assert.True(status == HttpStatusCode.OK, $"GET {path}: {(int)status}\n{body}");
        return JsonDocument.Parse(body).RootElement;
    }

    /// <summary>Posts a form the way a browser does: with the antiforgery token of the page it came from.</summary>
    public async Task<HttpResponseMessage> PostFormAsync(string pagePath, string action, params (string Name, string Value)[] fields)
    {
        var page = await GetPageAsync(pagePath);
        var token = TokenPattern().Match(page);
        Assert.True(token.Success, $"{pagePath} has a form with an antiforgery token");
        var content = new FormUrlEncodedContent([new("__RequestVerificationToken", WebUtility.HtmlDecode(token.Groups[1].Value)), .. fields.Select(f => new KeyValuePair<string, string>(f.Name, f.Value))]);
        return await Http.PostAsync(action, content, Token);
    }

    public async Task<HttpResponseMessage> PostJsonAsync(string path, string json)
    {
        using var content = new StringContent(json, System.Text.Encoding.UTF8, "application/json");
        return await Http.PostAsync(path, content, Token);
    }

    public async Task SignInAsync(string user)
    {
        using var response = await PostFormAsync("/signin", "/signin", ("user", user), ("password", "demo"), ("returnUrl", "/"));
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
    }

    public async Task<string?> SignedInUserAsync()
    {
        var match = UserPattern().Match(await GetPageAsync("/cart"));
        return match.Success ? match.Groups[1].Value : null;
    }

    public static async Task<string> BodyAsync(HttpResponseMessage response) => await response.Content.ReadAsStringAsync(Token);

    [GeneratedRegex("name=\"__RequestVerificationToken\" value=\"([^\"]+)\"")]
    private static partial Regex TokenPattern();

    [GeneratedRegex("<span id=\"nav-user\">([^<]+)</span>")]
    private static partial Regex UserPattern();
}
